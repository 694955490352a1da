//! Files of a run: written atomically (temp file in the same folder, fsync, rename, fsync of the
//! folder), so that a killed process, a full disk or a folder that turned read-only never leaves a
//! half-written file that looks complete: every file is the old one or the new one, and a failed
//! write removes its temporary file. Read with errors naming the file.
//!
//! For tests of these faults on machines where no small file system can be mounted, the
//! environment variable `PWSNAS_FAULT_AFTER_WRITES=N` makes every atomic write after the first `N`
//! fail as a full disk would (`PWSNAS_FAULT_ERRNO` picks another error, e.g. 30 for a read-only
//! file system).
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::Tensor;

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// The injected fault of `PWSNAS_FAULT_AFTER_WRITES` for this write, if it is due.
fn injected_fault() -> Option<std::io::Error> {
    static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let after: usize = std::env::var("PWSNAS_FAULT_AFTER_WRITES").ok()?.parse().ok()?;
    let errno = std::env::var("PWSNAS_FAULT_ERRNO").ok().and_then(|e| e.parse().ok()).unwrap_or(28);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    (n >= after).then(|| std::io::Error::from_raw_os_error(errno))
}

/// Runs `write` on the temporary file of `path`, then renames it over `path`; on any failure the
/// temporary file is removed and `path` is left as it was.
fn commit(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create folder {}", dir.display()))?;
    let tmp = temp_path(path);
    let fault = |_: ()| match injected_fault() {
        Some(e) => Err(anyhow::Error::new(e).context(format!("cannot write {}", path.display()))),
        None => Ok(()),
    };
    let result = write(&tmp).and_then(fault).and_then(|_| {
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    // The rename is durable once the folder is synced (best effort: not every file system can).
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    commit(path, |tmp| {
        let mut f = std::fs::File::create(tmp).with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// Writes pretty JSON atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads JSON, naming the file in every error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid: expected the JSON pwsnas writes", path.display()))
}

/// One tensor's bytes as the safetensors writer takes them.
struct Bytes {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for &Bytes {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Saves named tensors as safetensors, atomically (serialised in memory, then written as any other
/// file, so a failing disk gets the same clean error and leaves the old file).
pub fn save_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.detach().to_device(tch::Device::Cpu).contiguous();
        let dtype = safetensors::Dtype::try_from(t.kind())
            .map_err(|e| anyhow::anyhow!("cannot write {}: tensor '{name}': {e}", path.display()))?;
        let mut data = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut data, t.numel())
            .map_err(|e| anyhow::anyhow!("cannot write {}: tensor '{name}': {e}", path.display()))?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        views.push((name.clone(), Bytes { dtype, shape, data }));
    }
    let bytes = safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), &None)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e:?}", path.display()))?;
    write_atomic(path, &bytes)
}

/// Loads a safetensors file into a map (on the CPU).
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    tensors_from_bytes(path, &bytes)
}

/// The tensors of the safetensors file `path` whose bytes are `bytes` (on the CPU).
pub fn tensors_from_bytes(path: &Path, bytes: &[u8]) -> Result<HashMap<String, Tensor>> {
    let bad =
        |why: String| anyhow::anyhow!("{} is not a safetensors file pwsnas can read: {why}", path.display());
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("{e:?}")))?;
    let mut out = HashMap::new();
    for (name, view) in file.tensors() {
        let tensor = Tensor::try_from(view).map_err(|e| bad(format!("tensor '{name}': {e}")))?;
        out.insert(name, tensor);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_json(&path, &serde_json::json!({ "v": 1 })).unwrap();
        // A write whose temporary file cannot be made (its name is taken by a folder) fails cleanly.
        std::fs::create_dir(temp_path(&path)).unwrap();
        let err = write_json(&path, &serde_json::json!({ "v": 2 })).unwrap_err();
        assert!(format!("{err:#}").contains(&format!("cannot write {}", path.display())), "{err:#}");
        assert_eq!(read_json::<serde_json::Value>(&path).unwrap()["v"], 1);
        std::fs::remove_dir(temp_path(&path)).unwrap();
        write_json(&path, &serde_json::json!({ "v": 3 })).unwrap();
        assert_eq!(read_json::<serde_json::Value>(&path).unwrap()["v"], 3);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.json"]);
    }

    #[test]
    fn tensors_round_trip_and_bad_bytes_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).reshape([3, 1]);
        save_tensors(&path, &[("w".into(), t.shallow_clone())]).unwrap();
        let back = load_tensors(&path).unwrap();
        assert_eq!(back["w"].size(), [3, 1]);
        assert!(back["w"].equal(&t));
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 7, 8, bytes.len() - 1] {
            let err = tensors_from_bytes(&path, &bytes[..cut]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{} is not a safetensors file", path.display())), "{err}");
        }
    }
}
