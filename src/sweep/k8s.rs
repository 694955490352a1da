//! Kubernetes: an Indexed Job (`k8s/job.yaml`) with one completion per run. Kubernetes gives
//! each pod its index in `JOB_COMPLETION_INDEX`, which `pwsnas sweep task` reads, so pod N runs
//! run N exactly as a Slurm array task would. The sweep directory lives on a volume (a
//! PersistentVolumeClaim) mounted at [`MOUNT`] in every pod; the image must hold `pwsnas` on its
//! `PATH` with libtorch and ONNX Runtime (the set-up's `.deps/`).
//!
//! A finished run does nothing, so applying the Job again after a failure runs only what is not done.
use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};
use yaml_rust2::{Yaml, YamlEmitter};

use super::SweepDir;
use crate::fsutil::write_atomic;

/// Where the pods mount the sweep directory.
pub const MOUNT: &str = "/sweep";

/// What the manifest needs beyond the sweep.
pub struct K8sOptions {
    /// The container image with pwsnas.
    pub image: String,
    /// The PersistentVolumeClaim holding the sweep directory.
    pub claim: String,
    /// Pods at a time.
    pub parallelism: usize,
}

/// A DNS-1123 name for the Job: lowercase letters, digits and `-`, at most 63 characters.
fn job_name(sweep: &SweepDir) -> String {
    let dir = std::path::absolute(&sweep.root).unwrap_or_else(|_| sweep.root.clone());
    let base = dir.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let clean: String = base.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let mut name = format!("pwsnas-sweep-{}", clean.trim_matches('-'));
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// The Indexed Job.
pub fn manifest(sweep: &SweepDir, opts: &K8sOptions) -> Value {
    let runs = sweep.plan().runs.len();
    let threads = sweep.plan().run.threads;
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": job_name(sweep), "labels": { "app": "pwsnas-sweep" } },
        "spec": {
            "completionMode": "Indexed",
            "completions": runs,
            "parallelism": opts.parallelism.clamp(1, runs.max(1)),
            // Every run may fail once before the Job gives up; a new Job then runs only what is not done.
            "backoffLimit": runs,
            "template": {
                "metadata": { "labels": { "app": "pwsnas-sweep" } },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "pwsnas",
                        "image": opts.image,
                        "command": ["pwsnas", "sweep", "task", MOUNT],
                        "resources": { "requests": { "cpu": threads.to_string() } },
                        "volumeMounts": [{ "name": "sweep", "mountPath": MOUNT }],
                    }],
                    "volumes": [{ "name": "sweep", "persistentVolumeClaim": { "claimName": opts.claim } }],
                },
            },
        },
    })
}

fn to_yaml(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => n.as_i64().map_or_else(|| Yaml::Real(n.to_string()), Yaml::Integer),
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(to_yaml).collect()),
        Value::Object(map) => {
            Yaml::Hash(map.iter().map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v))).collect())
        }
    }
}

/// The manifest as YAML.
pub fn yaml(manifest: &Value) -> Result<String> {
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(&to_yaml(manifest))?;
    out.push('\n');
    Ok(out)
}

/// Writes `k8s/job.yaml`; returns its path.
pub fn write(sweep: &SweepDir, opts: &K8sOptions) -> Result<PathBuf> {
    let path = sweep.root.join("k8s").join("job.yaml");
    let head = format!(
        "# pwsnas sweep: {} runs as a Kubernetes Indexed Job (pod N runs run N, from JOB_COMPLETION_INDEX).\n\
         # Copy the sweep directory onto the volume of the PersistentVolumeClaim '{}' (it is mounted at {MOUNT}),\n\
         # then `kubectl apply -f job.yaml`; follow with `pwsnas sweep status` on the directory.\n",
        sweep.plan().runs.len(),
        opts.claim
    );
    write_atomic(&path, (head + &yaml(&manifest(sweep, opts))?).as_bytes())?;
    Ok(path)
}
