//! Facts about the machine a latency was measured on: the CPU model ([`cpu_model`]), the GPU model
//! ([`gpu_model`]) and how busy the CPUs were: the load average ([`load_average`]) and the share of
//! CPU time other processes used meanwhile ([`CpuClock`]).
//!
//! Why a module of its own: a latency means nothing without the machine it was measured on, so
//! `pwsnas export`'s report, latency tables, `pwsnas bench export` and comparisons of runs record
//! these facts, and all of them must read them the same way.

/// The CPU model (`model name` of `/proc/cpuinfo`) and the number of logical CPUs.
pub fn cpu_model() -> String {
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{name} ({cpus} logical CPUs)")
}

/// The widest x86 vector extension this CPU has (`AVX-512`, `AVX2`, `SSE4.2 or less`), or the
/// architecture's name elsewhere: CPUs of one model name can differ here, and ONNX Runtime's kernels
/// (hence latencies and their predictions) follow it.
pub fn isa() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512".into();
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "AVX2".into();
        }
        "SSE4.2 or less".into()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.into()
    }
}

/// The GPU model(s) the NVIDIA driver lists (`/proc/driver/nvidia/gpus/*/information`), or
/// `unknown GPU`.
pub fn gpu_model() -> String {
    let models = nvidia_gpus();
    if models.is_empty() {
        "unknown GPU".into()
    } else {
        models.join(" + ")
    }
}

/// The models of the NVIDIA GPUs the driver lists, sorted; empty without a driver or a GPU.
pub fn nvidia_gpus() -> Vec<String> {
    let mut models: Vec<String> = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("information")).ok())
        .filter_map(|text| text.lines().find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string())))
        .collect();
    models.sort();
    models
}

/// The 1-minute load average (`/proc/loadavg`): runnable processes, to compare with the CPU count.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// CPU time of the whole machine and of this process, for [`CpuClock::busy_elsewhere`].
pub struct CpuClock {
    /// All CPUs: total and idle ticks (`/proc/stat`).
    total: u64,
    idle: u64,
    /// This process, every thread: user + system ticks (`/proc/self/stat`).
    own: u64,
}

impl CpuClock {
    /// Now; `None` where `/proc` cannot tell.
    pub fn now() -> Option<CpuClock> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> =
            stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let total = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4).copied().unwrap_or(0);
        let me = std::fs::read_to_string("/proc/self/stat").ok()?;
        let fields: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
        let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(CpuClock { total, idle, own })
    }

    /// The share of the machine's CPU time since `self` that other processes used.
    pub fn busy_elsewhere(&self) -> Option<f64> {
        let now = CpuClock::now()?;
        let total = now.total.checked_sub(self.total)?;
        let busy = total.checked_sub(now.idle.checked_sub(self.idle)?)?;
        let elsewhere = busy.saturating_sub(now.own.checked_sub(self.own)?);
        (total > 0).then(|| elsewhere as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_facts_are_read() {
        let cpu = cpu_model();
        assert!(cpu.ends_with("logical CPUs)"), "{cpu}");
        let clock = CpuClock::now().expect("/proc/stat is readable on Linux");
        // Burn a little CPU here: the share used elsewhere is a fraction.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let busy = clock.busy_elsewhere().unwrap_or(0.0);
        assert!((0.0..=1.0).contains(&busy), "{busy}");
        assert!(load_average().is_some_and(|l| l >= 0.0));
    }
}
