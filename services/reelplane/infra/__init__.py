"""The real-servers harness: installs and runs Kafka, Redis, Cassandra, MariaDB and
an S3 store as plain processes on 127.0.0.1 (no container engine needed)."""
