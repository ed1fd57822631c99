//! [`Host`]: the machine this process runs on, as runners record it.

/// This machine's host name (`/etc/hostname`, else `$HOSTNAME`).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_owned())
}

/// The machine this process runs on.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    /// The kernel's boot id, which every process and container of one machine shares (the host
    /// name where there is none).
    pub(crate) id: String,
    /// The host name, for people.
    pub(crate) name: String,
}

impl Host {
    pub(crate) fn this() -> Host {
        let name = host_name();
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| name.clone());
        Host { id, name }
    }
}
