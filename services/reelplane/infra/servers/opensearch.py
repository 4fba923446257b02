"""OpenSearch 2.19 as the search backend: one node, a plain Java 17 process.

Assembled from Maven Central like Kafka and Cassandra (no tarball, no container):
`cache/search/lib` holds the server and what it needs (`copy-dependencies` of
`org.opensearch:opensearch` plus the jars its POM marks optional), and
`cache/search/modules/<name>` each module's own jars (those not already in lib/,
or the node refuses to start on "jar hell") with a descriptor and security
policy written here, since the Maven jars carry neither. Four modules: the HTTP
and transport layer (netty4), painless (analysis-common extends it),
analysis-common (asciifolding, edge n-grams, word delimiters) and mapper-extras
(`search_as_you_type`, `rank_feature`). The security plugin is simply not
installed, so the node speaks plain HTTP without auth, on loopback only.

OpenSearch refuses to run as root: when the harness is root, the JVM runs as
`nobody` (65534) through `setpriv`, which execs, so the pid stays the JVM's.
Its config, data, logs and tmp live under `data/search/`, owned by that user;
the home folder (`cache/search`) stays root-owned and read-only to the node.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from reelplane.infra.harness import (
    HarnessError,
    Server,
    fetch_maven_jars,
    port_open,
    progress,
    require_java_and_maven,
    run_step,
)

OPENSEARCH_VERSION = "2.19.6"  # the last 2.x whose module jars are all on Central
LOG4J_VERSION = "2.25.4"
SPATIAL4J_VERSION = "0.7"
JTS_VERSION = "1.15.0"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
CLUSTER_NAME = "reelplane-search"
#: The unprivileged user the node runs as when the harness is root.
NODE_UID = 65534


def _pom(artifact_id: str, dependencies: list[tuple[str, str, str]]) -> str:
    deps = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in dependencies
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0
                             https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>reelplane.infra</groupId>
  <artifactId>{artifact_id}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>{DEPENDENCY_PLUGIN_VERSION}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
"""


_SERVER_DEPENDENCIES = [
    ("org.opensearch", "opensearch", OPENSEARCH_VERSION),
    # Loads the modules' class loaders; not a dependency of the server jar.
    ("org.opensearch", "opensearch-plugin-classloader", OPENSEARCH_VERSION),
    # <optional> in the server's POM, but the node needs them at start.
    ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    ("org.locationtech.spatial4j", "spatial4j", SPATIAL4J_VERSION),
    ("org.locationtech.jts", "jts-core", JTS_VERSION),
]


class _Module:
    """One OpenSearch module: its Maven artifact, plugin class and extra permissions."""

    def __init__(
        self, name: str, artifact: str, classname: str, *, extends: str = "", policy: str = ""
    ) -> None:
        self.name = name
        self.artifact = artifact
        self.classname = classname
        self.extends = extends
        self.policy = policy

    def descriptor(self) -> str:
        return "\n".join(
            [
                f"description={self.name} (assembled by reelplane's infra harness)",
                f"version={OPENSEARCH_VERSION}",
                f"name={self.name}",
                f"classname={self.classname}",
                "java.version=11",
                f"opensearch.version={OPENSEARCH_VERSION}",
                "custom.foldername=",
                f"extended.plugins={self.extends}",
                "has.native.controller=false",
                "",
            ]
        )


# The permissions each module asks the security manager for (the same grants the
# OpenSearch distribution ships for these modules).
_NETTY_POLICY = """grant {
  // socket backlog size
  permission java.io.FilePermission "/proc/sys/net/core/somaxconn", "read";
  permission java.net.SocketPermission "*", "accept,connect";
  // netty's event-loop threads set their own context class loader
  permission java.lang.RuntimePermission "*", "setContextClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
  permission java.util.PropertyPermission "sun.nio.ch.bugLevel", "write";
};
"""

_PAINLESS_POLICY = """grant {
  // compiled scripts are classes of their own
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
"""

MODULES = (
    _Module(
        "transport-netty4",
        "transport-netty4-client",
        "org.opensearch.transport.Netty4Plugin",
        policy=_NETTY_POLICY,
    ),
    _Module(
        "lang-painless",
        "lang-painless",
        "org.opensearch.painless.PainlessPlugin",
        policy=_PAINLESS_POLICY,
    ),
    _Module(
        "analysis-common",
        "analysis-common",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        extends="lang-painless",
    ),
    _Module(
        "mapper-extras", "mapper-extras-client", "org.opensearch.index.mapper.MapperExtrasPlugin"
    ),
)

# Console only: the harness sends stdout to run/search.log.
_LOG4J2 = """status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.deprecation.name = org.opensearch.deprecation
logger.deprecation.level = error
"""

# JVM flags from the distribution's jvm.options that matter here, with a small heap:
# the machine is shared, and 512 MiB holds 100k videos comfortably.
_JVM_OPTIONS = [
    "-Xms512m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-OmitStackTraceInFastThrow",
    "-Xss1m",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
    "-Djna.nosys=true",
    "-Dio.netty.noUnsafe=true",
    "-Dio.netty.noKeySetOptimization=true",
    "-Dio.netty.recycler.maxCapacityPerThread=0",
    "-Dio.netty.allocator.numDirectArenas=0",
    "-Dlog4j.shutdownHookEnabled=false",
    "-Dlog4j2.disable.jmx=true",
    "-Djava.locale.providers=SPI,COMPAT",
]


class OpenSearch(Server):
    name = "search"
    port = 19200  # HTTP (the REST API)
    transport_port = 19300  # node-to-node, loopback only
    start_timeout_s = 180.0
    setting = "REELPLANE_SEARCH_URL"

    @property
    def url(self) -> str:
        return f"opensearch://{self.address}"

    # -- paths ---------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.cache_dir

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def modules_dir(self) -> Path:
        return self.home / "modules"

    @property
    def _stamp(self) -> Path:
        return self.lib_dir / f".complete-{OPENSEARCH_VERSION}-{LOG4J_VERSION}"

    @property
    def _modules_stamp(self) -> Path:
        return self.modules_dir / f".complete-{OPENSEARCH_VERSION}"

    @property
    def config_dir(self) -> Path:
        return self.data_dir / "config"

    # -- install -------------------------------------------------------------
    def install(self) -> None:
        if shutil.which("setpriv") is None and os.geteuid() == 0:
            raise HarnessError("search: setpriv (util-linux) is needed to run OpenSearch as nobody")
        fetch_maven_jars(
            self.name,
            self.cache_dir,
            pom_xml=_pom("opensearch-runtime", _SERVER_DEPENDENCIES),
            stamp=self._stamp,
            main_jar=f"opensearch-{OPENSEARCH_VERSION}.jar",
            what=f"OpenSearch {OPENSEARCH_VERSION} (log4j {LOG4J_VERSION})",
        )
        self._install_modules()
        for empty in ("bin", "plugins"):  # the node checks that path.home has both
            (self.home / empty).mkdir(exist_ok=True)

    def _install_modules(self) -> None:
        if self._modules_stamp.is_file():
            return
        require_java_and_maven(self.name)
        in_lib = {p.name for p in self.lib_dir.glob("*.jar")}
        poms = self.cache_dir / "poms"
        raw = self.cache_dir / "raw"
        poms.mkdir(exist_ok=True)
        if self.modules_dir.exists():
            shutil.rmtree(self.modules_dir)
        for module in MODULES:
            pom = poms / f"{module.artifact}.xml"
            pom.write_text(
                _pom(
                    f"opensearch-module-{module.name}",
                    [("org.opensearch.plugin", module.artifact, OPENSEARCH_VERSION)],
                )
            )
            out = raw / module.artifact
            if out.exists():
                shutil.rmtree(out)
            run_step(
                self.name,
                f"fetching module {module.name} from Maven Central",
                [
                    "mvn",
                    "-B",
                    "-q",
                    "-Dstyle.color=never",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={out}",
                    "-DincludeScope=runtime",
                ],
                cwd=self.cache_dir,
            )
            target = self.modules_dir / module.name
            target.mkdir(parents=True)
            copied = 0
            for jar in sorted(out.glob("*.jar")):
                if jar.name not in in_lib:  # the same jar twice on the path is "jar hell"
                    shutil.copy2(jar, target / jar.name)
                    copied += 1
            if not any(target.glob(f"{module.artifact}-*.jar")):
                raise HarnessError(f"search: module {module.name}: {module.artifact} jar missing")
            (target / "plugin-descriptor.properties").write_text(module.descriptor())
            if module.policy:
                (target / "plugin-security.policy").write_text(module.policy)
            progress(self.name, f"module {module.name}: {copied} jars")
        self._modules_stamp.write_text(f"{OPENSEARCH_VERSION}\n")

    # -- prepare -------------------------------------------------------------
    def _yaml(self) -> str:
        d = self.data_dir
        return f"""# Written by reelplane's infra harness; rewritten on every start.
cluster.name: {CLUSTER_NAME}
node.name: search-1
path.data: {d / "data"}
path.logs: {d / "logs"}
network.host: {self.host}
http.port: {self.port}
transport.port: {self.transport_port}
discovery.type: single-node
# A shared dev disk may be fuller than the 90% watermark: do not go read-only.
cluster.routing.allocation.disk.threshold_enabled: false
# Indices are created with their mappings by the adapter, never by a stray write.
action.auto_create_index: false
"""

    def prepare(self) -> None:
        for sub in ("config", "data", "logs", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.config_dir / "opensearch.yml").write_text(self._yaml())
        (self.config_dir / "log4j2.properties").write_text(_LOG4J2)
        if os.geteuid() == 0:
            # The node writes its keystore into config/ on first start, so the whole
            # state folder belongs to the user it runs as.
            for path in [self.data_dir, *self.data_dir.rglob("*")]:
                os.lchown(path, NODE_UID, NODE_UID)

    # -- run -----------------------------------------------------------------
    def command(self) -> tuple[list[str], dict[str, str]]:
        d = self.data_dir
        cmd = [
            "java",
            *_JVM_OPTIONS,
            f"-Djava.io.tmpdir={d / 'tmp'}",
            f"-Dopensearch.path.home={self.home}",
            f"-Dopensearch.path.conf={self.config_dir}",
            "-Dopensearch.distribution.type=tar",
            "-cp",
            f"{self.lib_dir}/*",
            "org.opensearch.bootstrap.OpenSearch",
        ]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv") or "setpriv"
            ids = str(NODE_UID)
            cmd = [setpriv, f"--reuid={ids}", f"--regid={ids}", "--clear-groups", "--", *cmd]
        # Heap and flags are set above: an inherited OPENSEARCH_JAVA_OPTS must not add more.
        return cmd, {"OPENSEARCH_JAVA_OPTS": "", "ES_JAVA_OPTS": ""}

    # -- readiness -----------------------------------------------------------
    def ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        health = self._get("/_cluster/health")
        return health.get("cluster_name") == CLUSTER_NAME and health.get("status") in (
            "green",
            "yellow",
        )

    def after_ready(self) -> None:
        # Every index on this node gets 0 replicas unless it says otherwise.
        body = {
            "index_patterns": ["*"],
            "priority": 0,
            "template": {"settings": {"number_of_replicas": 0}},
        }
        self._request("PUT", "/_index_template/reelplane-single-node", body)

    def _get(self, path: str) -> dict[str, object]:
        return self._request("GET", path, None)

    def _request(
        self, method: str, path: str, body: object, timeout_s: float = 5.0
    ) -> dict[str, object]:
        import httpx

        try:
            resp = httpx.request(
                method, f"http://{self.address}{path}", json=body, timeout=timeout_s
            )
            resp.raise_for_status()
            parsed = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise HarnessError(f"search: {method} {path} failed: {exc}") from exc
        return parsed if isinstance(parsed, dict) else {}
