//! `--device auto|cpu|cuda|cuda:N`.
use anyhow::{bail, Result};
use tch::Device;

/// What a device name asks for, without checking that it is there (`None`: `auto`).
fn requested(name: &str) -> Result<Option<Device>> {
    let name = name.trim();
    Ok(match name {
        "auto" => None,
        "cpu" => Some(Device::Cpu),
        "cuda" => Some(Device::Cuda(0)),
        _ => match name.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Some(Device::Cuda(n)),
            _ => bail!("unknown device '{name}': expected auto, cpu, cuda or cuda:N"),
        },
    })
}

/// Checks that a device name is well formed, for runs on another machine (a sweep's Slurm tasks),
/// whose devices this one cannot see.
pub fn check_name(name: &str) -> Result<()> {
    requested(name).map(|_| ())
}

/// Parses a device name; `auto` picks the first CUDA device when libtorch sees one.
pub fn parse(name: &str) -> Result<Device> {
    let device = requested(name)?.unwrap_or_else(Device::cuda_if_available);
    if let Device::Cuda(n) = device {
        let count = tch::Cuda::device_count();
        if (n as i64) >= count {
            bail!(
                "device cuda:{n} is not available: libtorch sees {count} CUDA device(s); use --device cpu or auto (run `pwsnas doctor` to see what libtorch finds)"
            );
        }
    }
    Ok(device)
}

pub fn name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse("cpu").unwrap(), Device::Cpu);
        assert!(parse("gpu").unwrap_err().to_string().contains("expected auto, cpu"));
        assert!(parse("cuda:x").is_err());
        if tch::Cuda::device_count() == 0 {
            assert!(parse("cuda:0").unwrap_err().to_string().contains("not available"));
            assert_eq!(parse("auto").unwrap(), Device::Cpu);
        }
    }
}
