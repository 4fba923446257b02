"""Apache Cassandra 5.0 as the wide-row store: one node, a plain Java 17 process.

The jars come from Maven Central through `mvn dependency:copy-dependencies`
(`cassandra-all` and everything it needs) into `cache/cassandra/lib`; no
tarball, no container. The node keeps its sstables, commit log, hints and saved
caches under `data/cassandra/`, binds only to 127.0.0.1 and runs without JMX.
Config (`cassandra.yaml`, `logback.xml`) is rewritten on every start; the data
stays.

Tuned for a small test machine and a fast start: a 1 GiB heap, one token,
small caches and thread pools, no gossip settling or ring delay, no auto
snapshots on DROP/TRUNCATE. Two start-up savers:

- Cassandra calls `mlockall` at start; as root that pins the whole committed
  heap (RSS ~1.5 GiB instead of ~0.5 GiB). The JVM runs without CAP_IPC_LOCK
  (`setpriv`), so the lock fails harmlessly.
- An AppCDS archive of Cassandra's ~10k classes: the first run writes it when it
  exits (`-XX:ArchiveClassesAtExit`, a few seconds added to that stop), later
  starts map it and come up several seconds sooner on 2 cores. A new archive is
  checked once with `-Xshare:on` before use (a truncated one would crash the JVM).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from reelplane.infra.harness import (
    Server,
    fetch_maven_jars,
    port_open,
    progress,
)

CASSANDRA_VERSION = "5.0.9"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
KEYSPACE = "reelplane"

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0
                             https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>reelplane.infra</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{cassandra}</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>{plugin}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
"""

# Console only: the harness sends stdout to run/cassandra.log. INFO for Cassandra's
# lifecycle lines (startup, schema changes, shutdown); WARN for the per-table and
# per-sstable chatter (flushes, compactions, sstable opens) and the libraries.
_LOGBACK = """<configuration scan="false" debug="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder>
      <pattern>%d{ISO8601} %-5level [%thread] %logger{1} - %msg%n</pattern>
    </encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="org.apache.cassandra.config.Config" level="WARN"/>
  <logger name="org.apache.cassandra.db.ColumnFamilyStore" level="WARN"/>
  <logger name="org.apache.cassandra.db.SystemKeyspaceMigrator41" level="WARN"/>
  <logger name="org.apache.cassandra.db.compaction" level="WARN"/>
  <logger name="org.apache.cassandra.db.lifecycle" level="WARN"/>
  <logger name="org.apache.cassandra.db.memtable" level="WARN"/>
  <logger name="org.apache.cassandra.index.SecondaryIndexManager" level="WARN"/>
  <logger name="org.apache.cassandra.io.sstable" level="WARN"/>
  <logger name="org.apache.cassandra.service.StartupChecks" level="ERROR"/>
  <logger name="com.datastax" level="WARN"/>
  <logger name="io.netty" level="WARN"/>
  <logger name="com.github.benmanes" level="WARN"/>
  <logger name="org.apache.cassandra.utils.SigarLibrary" level="ERROR"/>
  <root level="WARN">
    <appender-ref ref="STDOUT"/>
  </root>
</configuration>
"""

# Java 17 flags from Cassandra's conf/jvm17-server.options and jvm-server.options
# (JPMS opens/exports, netty, G1), less the ones meant for big production boxes
# (AlwaysPreTouch, NUMA, heap dumps). On OutOfMemoryError the node exits instead
# of limping on.
_JVM17_OPTIONS = [
    "-ea",
    "-XX:+ExitOnOutOfMemoryError",
    "-da:net.openhft...",
    "-Xss256k",
    "-XX:+UseThreadPriorities",
    "-XX:+UseTLAB",
    "-XX:+ResizeTLAB",
    "-XX:+PerfDisableSharedMem",
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:G1HeapRegionSize=16m",
    "-XX:G1RSetUpdatingPauseTimePercent=5",
    "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
    "-Djava.net.preferIPv4Stack=true",
    "-Djava.awt.headless=true",
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
]

# One node on loopback: nothing to wait for from other nodes.
_FAST_START = [
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.ring_delay_ms=100",
    "-Dcassandra.schema_delay_ms=100",
    "-Dcassandra.superuser_setup_delay_ms=0",
]


class Cassandra(Server):
    name = "cassandra"
    port = 19042  # native transport (CQL)
    storage_port = 17000  # inter-node messaging, loopback only
    start_timeout_s = 240.0
    setting = "REELPLANE_WIDEROW_URL"

    @property
    def url(self) -> str:
        return f"cassandra://{self.address}/{KEYSPACE}"

    # -- paths ---------------------------------------------------------------
    @property
    def lib_dir(self) -> Path:
        return self.cache_dir / "lib"

    @property
    def _stamp(self) -> Path:
        return self.lib_dir / f".complete-{CASSANDRA_VERSION}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "cassandra.yaml"

    @property
    def logback_file(self) -> Path:
        return self.data_dir / "logback.xml"

    def _dir(self, name: str) -> Path:
        return self.data_dir / name

    # -- install -------------------------------------------------------------
    def install(self) -> None:
        fetch_maven_jars(
            self.name,
            self.cache_dir,
            pom_xml=_POM.format(cassandra=CASSANDRA_VERSION, plugin=DEPENDENCY_PLUGIN_VERSION),
            stamp=self._stamp,
            main_jar=f"cassandra-all-{CASSANDRA_VERSION}.jar",
            what=f"Cassandra {CASSANDRA_VERSION}",
        )

    # -- prepare -------------------------------------------------------------
    def _yaml(self) -> str:
        host = self.host
        d = self._dir
        return f"""# Written by reelplane's infra harness; rewritten on every start.
cluster_name: reelplane
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{host}:{self.storage_port}"
listen_address: {host}
rpc_address: {host}
storage_port: {self.storage_port}
native_transport_port: {self.port}
start_native_transport: true
# A fresh single-node cluster: no need to stay readable by 4.x nodes.
storage_compatibility_mode: NONE

data_file_directories:
  - {d("data")}
commitlog_directory: {d("commitlog")}
saved_caches_directory: {d("saved_caches")}
hints_directory: {d("hints")}
cdc_raw_directory: {d("cdc_raw")}

authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
network_authorizer: AllowAllNetworkAuthorizer

commitlog_sync: periodic
commitlog_sync_period: 10s
auto_snapshot: false
snapshot_before_compaction: false
hinted_handoff_enabled: false
incremental_backups: false

# Sized for a 2-core test machine with a 1 GiB heap.
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
concurrent_materialized_view_writes: 2
concurrent_compactors: 1
compaction_throughput: 64MiB/s
memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
key_cache_size: 16MiB
row_cache_size: 0MiB
counter_cache_size: 8MiB
prepared_statements_cache_size: 16MiB
native_transport_max_threads: 32
diagnostic_events_enabled: false
"""

    def prepare(self) -> None:
        for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs"):
            self._dir(sub).mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._yaml())
        self.logback_file.write_text(_LOGBACK)

    # -- run -----------------------------------------------------------------
    def _jamm_agent(self) -> list[str]:
        jars = sorted(self.lib_dir.glob("jamm-*.jar"))
        return [f"-javaagent:{jars[-1]}"] if jars else []

    def _cds_archive(self) -> Path:
        """The class-data archive for these jars on this JVM build."""
        java = Path(shutil.which("java") or "java").resolve()
        libjvm = java.parent.parent / "lib" / "server" / "libjvm.so"
        try:
            st = (libjvm if libjvm.is_file() else java).stat()
            jvm_key = f"{st.st_size:x}-{int(st.st_mtime):x}"
        except OSError:
            jvm_key = "unknown"
        return self.cache_dir / f"classes-{CASSANDRA_VERSION}-{jvm_key}.jsa"

    def _cds_options(self, agent: list[str]) -> list[str]:
        """Map the class archive if there is a good one, else have this run write it."""
        # jamm is a -javaagent: archiving alongside an agent is a diagnostic option
        # (the JVM notes that in one line at each start).
        unlock = ["-XX:+UnlockDiagnosticVMOptions", "-XX:+AllowArchivingWithJavaAgent"]
        archive = self._cds_archive()
        pending = archive.with_suffix(".jsa.pending")
        if pending.is_file() and not archive.is_file():
            if self._archive_usable(pending, [*unlock, *agent]):
                pending.replace(archive)
                progress(self.name, f"class-data archive ready ({archive.name})")
            else:
                pending.unlink(missing_ok=True)
        if archive.is_file():
            return [*unlock, f"-XX:SharedArchiveFile={archive}"]
        for old in self.cache_dir.glob("classes-*.jsa*"):
            old.unlink(missing_ok=True)  # archives of another version or JVM build
        # Written when this JVM exits; its harmless warnings (old class files that
        # cannot be archived) stay out of the log.
        return [*unlock, f"-XX:ArchiveClassesAtExit={pending}", "-Xlog:cds*=off"]

    def _archive_usable(self, archive: Path, options: list[str]) -> bool:
        """True when a JVM with this classpath maps the archive (`-Xshare:on`)."""
        try:
            probe = subprocess.run(
                [
                    "java",
                    *options,
                    f"-XX:SharedArchiveFile={archive}",
                    "-Xshare:on",
                    "-XX:ErrorFile=/dev/null",
                    "-cp",
                    f"{self.lib_dir}/*",
                    "-version",
                ],
                capture_output=True,
                timeout=60,
                check=False,
                cwd=self.cache_dir,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return probe.returncode == 0

    def command(self) -> tuple[list[str], dict[str, str]]:
        agent = self._jamm_agent()
        cmd = [
            "java",
            "-Xms1G",
            "-Xmx1G",
            *_JVM17_OPTIONS,
            *agent,
            *self._cds_options(agent),
            *_FAST_START,
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.config={self.config_file.resolve().as_uri()}",
            f"-Dcassandra.storagedir={self.data_dir}",
            f"-Dcassandra.logdir={self._dir('logs')}",
            f"-Dlogback.configurationFile={self.logback_file}",
            "-cp",
            f"{self.lib_dir}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]
        # Root has CAP_IPC_LOCK, so Cassandra's mlockall would pin the whole heap:
        # drop that one capability (setpriv execs, so the pid stays the JVM's).
        setpriv = shutil.which("setpriv")
        if os.geteuid() == 0 and setpriv:
            cmd = [setpriv, "--bounding-set=-ipc_lock", "--", *cmd]
        return cmd, {}

    # -- readiness -----------------------------------------------------------
    def ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        return self._probe()

    def _probe(self, timeout_s: float = 5.0) -> bool:
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy

        profile = ExecutionProfile(
            load_balancing_policy=RoundRobinPolicy(), request_timeout=timeout_s
        )
        cluster = Cluster(
            contact_points=[self.host],
            port=self.port,
            protocol_version=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=timeout_s,
            control_connection_timeout=timeout_s,
            schema_metadata_enabled=False,
            token_metadata_enabled=False,
        )
        try:
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local").one()
            return row is not None and bool(row.release_version)
        except Exception:
            return False
        finally:
            cluster.shutdown()
