//! Ping, stats, cluster metadata and clients. Stats fills every field Iggy's has: process and
//! machine CPU ([`process::cpu_meter`]), memory, disk I/O, threads and the data directory's disk.

use bytes::BytesMut;
use wharf_protocol::responses::{encode_client, encode_cluster_metadata, StatsWire};

use crate::broker::{now_us, Action, BrokerError};
use crate::metrics::process::{self, ProcessSample};
use crate::native::connection::Reply;
use crate::native::session::Session;

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A `/proc/meminfo` value in bytes.
fn meminfo(key: &str) -> u64 {
    read_trimmed("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

impl Session {
    pub(crate) fn get_cluster_metadata(&self) -> Result<Reply, BrokerError> {
        let addr = self.config.address;
        let mut out = BytesMut::new();
        encode_cluster_metadata(
            "wharf",
            "wharf-0",
            &addr.ip().to_string(),
            addr.port(),
            &mut out,
        );
        Ok(Reply::body(out))
    }

    pub(crate) fn get_client(&self, client_id: u32, me: bool) -> Result<Reply, BrokerError> {
        if !me {
            self.broker
                .authorize(&self.principal()?, Action::ReadServers)?;
        }
        let Some(c) = self.broker.client(client_id) else {
            return Ok(Reply::empty());
        };
        let mut out = BytesMut::new();
        encode_client(
            c.id,
            c.user_id,
            &c.address.to_string(),
            &c.groups,
            true,
            &mut out,
        );
        Ok(Reply::body(out))
    }

    pub(crate) fn get_clients(&self) -> Result<Reply, BrokerError> {
        self.broker
            .authorize(&self.principal()?, Action::ReadServers)?;
        let mut out = BytesMut::new();
        for c in self.broker.clients() {
            encode_client(
                c.id,
                c.user_id,
                &c.address.to_string(),
                &c.groups,
                false,
                &mut out,
            );
        }
        Ok(Reply::body(out))
    }

    pub(crate) fn get_stats(&self) -> Result<Reply, BrokerError> {
        self.broker
            .authorize(&self.principal()?, Action::ReadServers)?;
        let process = ProcessSample::now();
        let cpu = process::cpu_meter().usage();
        let (free_disk_space, total_disk_space) =
            process::disk_space(self.broker.data_dir()).unwrap_or((0, 0));
        let mut stats = StatsWire {
            process_id: std::process::id(),
            // As Iggy's (sysinfo's): the process in percent of one core, the machine 0..=100.
            cpu_usage: cpu.process_percent,
            total_cpu_usage: cpu.machine_percent,
            total_memory: meminfo("MemTotal:"),
            available_memory: meminfo("MemAvailable:"),
            memory_usage: process.resident_bytes,
            read_bytes: process.read_bytes,
            written_bytes: process.written_bytes,
            start_time: self.broker.started_at,
            run_time: now_us().saturating_sub(self.broker.started_at),
            clients_count: self.broker.client_count() as u32,
            consumer_groups_count: self.broker.native_group_count() as u32,
            hostname: read_trimmed("/proc/sys/kernel/hostname"),
            os_name: std::env::consts::OS.to_string(),
            os_version: read_trimmed("/proc/sys/kernel/ostype"),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            server_version: format!("0.8.0 (wharf {})", env!("CARGO_PKG_VERSION")),
            server_semver: 8000,
            threads_count: u32::try_from(process.threads).unwrap_or(u32::MAX),
            free_disk_space,
            total_disk_space,
            ..StatsWire::default()
        };
        for s in self.broker.streams() {
            stats.streams_count += 1;
            for t in self.broker.topics(s.id).unwrap_or_default() {
                stats.topics_count += 1;
                for ps in self.broker.partition_stats(s.id, t.id) {
                    stats.partitions_count += 1;
                    stats.segments_count += ps.segments as u32;
                    stats.messages_count += ps.high_watermark.saturating_sub(ps.log_start_offset);
                    stats.messages_size_bytes += ps.size_bytes;
                }
            }
        }
        let mut out = BytesMut::new();
        stats.encode(&mut out);
        Ok(Reply::body(out))
    }
}
