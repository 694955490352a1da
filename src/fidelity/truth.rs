//! The ground truth of the ranking study: every child of a small space trained stand-alone with
//! the retraining settings (`[retrain]`: epochs, batch size, learning rate, steps per epoch), one
//! seed, and its top-1 on the test split.
//!
//! A truth folder holds `truth.json` (the settings and the children, in enumeration order),
//! `children/NNNNN.json` (one finished child each, written atomically when it is trained) and
//! `truth.jsonl` (every finished child, one line each, rewritten atomically after every run of the
//! command). A rerun trains only the children without a file, so a killed run loses at most the
//! children in training. Workers split the children by index (`I/J` takes the children with
//! `index mod J = I`): `--jobs J` starts J processes of this binary here, `--slurm` submits them
//! as a Slurm job array (array task I is worker I) and a later `pwsnas fidelity truth --out DIR`
//! collects what they wrote.
//!
//! Every child trains with the same seed (same initialisation stream, same batches): the children
//! then differ only by their architecture, which is what the study ranks. A second truth seed
//! (`--seed`) measures how much the truth itself moves, the ceiling of any metric's τ.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pwsnas_models::{Mode, Space, Supernet};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::Device;

use crate::data::{accuracy, RunData};
use crate::fsutil::{read_json, write_atomic, write_json};
use crate::progress::Progress;
use crate::settings::Settings;
use crate::train::sgd::Sgd;

/// Spaces with more children than this are refused: the truth trains every one.
pub const MAX_CHILDREN: usize = 5_000;

/// `truth.json`: what every child is trained with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TruthSpec {
    /// The settings (their `retrain` part is the training; `seed` the one seed).
    pub settings: Settings,
    /// The space's name and parameters (with the data's shape), as `pwsnas arch info` prints them.
    pub space: String,
    pub space_params: serde_json::Value,
    /// Every child, in the space's enumeration order: child `i` is `children/{i:05}.json`.
    pub children: Vec<String>,
}

impl TruthSpec {
    /// Whether two specs train the same children the same way: the space, the data and its split,
    /// the seed and `[retrain]` (the supernet, shrink and search settings play no part in a truth).
    pub fn same_truth(&self, other: &TruthSpec) -> bool {
        let (a, b) = (&self.settings, &other.settings);
        self.space == other.space
            && self.space_params == other.space_params
            && self.children == other.children
            && (&a.data, a.image_size, a.val_fraction, a.seed, &a.retrain)
                == (&b.data, b.image_size, b.val_fraction, b.seed, &b.retrain)
    }
}

/// One trained child: a line of `truth.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChildTruth {
    pub index: usize,
    pub arch: String,
    pub test_accuracy: f64,
    pub test_images: usize,
    /// Training accuracy and loss of the last epoch.
    pub train_accuracy: f64,
    pub loss: f64,
    pub epochs: usize,
    pub seed: u64,
    pub params: i64,
    pub flops: u64,
    pub seconds: f64,
}

/// A truth folder.
pub struct TruthDir {
    pub root: PathBuf,
    pub spec: TruthSpec,
}

impl TruthDir {
    fn spec_path(root: &Path) -> PathBuf {
        root.join("truth.json")
    }

    fn child_path(&self, index: usize) -> PathBuf {
        self.root.join("children").join(format!("{index:05}.json"))
    }

    pub fn log_path(&self, worker: usize) -> PathBuf {
        self.root.join("logs").join(format!("worker-{worker}.log"))
    }

    /// Creates the folder for these settings, or opens it when it was made with the same ones;
    /// refuses a folder made with other settings (its children would mix two truths).
    pub fn create_or_open(root: &Path, settings: &Settings, data: &RunData) -> Result<TruthDir> {
        let kind = crate::supernet::space_kind(settings, data)?;
        let space = crate::supernet::initial_space(settings, &kind)?;
        if space.size() > MAX_CHILDREN as u128 {
            bail!(
                "the ground truth trains every child, but this space has {} (more than {MAX_CHILDREN}): \
                 use a smaller space, e.g. --space nb201 --nodes 3 (125 children), or a shrunk space.json as space_file",
                space.size()
            );
        }
        let spec = TruthSpec {
            settings: settings.clone(),
            space: kind.name().to_string(),
            space_params: kind.params_json(),
            children: space.enumerate().iter().map(|a| kind.format_arch(a)).collect(),
        };
        let path = Self::spec_path(root);
        if path.exists() {
            let stored: TruthSpec = read_json(&path)?;
            if !stored.same_truth(&spec) {
                bail!(
                    "{} holds a truth made with other settings (space, data, seed or [retrain]): \
                     pass the same settings, or leave them out to continue that truth (`pwsnas fidelity truth --out {}`), \
                     or use another --out",
                    path.display(),
                    root.display()
                );
            }
        } else {
            write_json(&path, &spec)?;
        }
        Ok(TruthDir { root: root.to_path_buf(), spec })
    }

    pub fn open(root: &Path) -> Result<TruthDir> {
        let path = Self::spec_path(root);
        if !path.exists() {
            bail!(
                "{} is not a truth folder (no truth.json): create it with `pwsnas fidelity truth --out {} --space ... --data ...`",
                root.display(),
                root.display()
            );
        }
        let spec: TruthSpec = read_json(&path)?;
        Ok(TruthDir { root: root.to_path_buf(), spec })
    }

    /// The finished children, by index.
    pub fn finished(&self) -> Result<BTreeMap<usize, ChildTruth>> {
        let mut out = BTreeMap::new();
        for index in 0..self.spec.children.len() {
            let path = self.child_path(index);
            if path.exists() {
                let child: ChildTruth = read_json(&path)?;
                if child.arch != self.spec.children[index] {
                    bail!(
                        "{} is for {} but child {index} of truth.json is {}: the folder was edited; remove the file to retrain it",
                        path.display(),
                        child.arch,
                        self.spec.children[index]
                    );
                }
                out.insert(index, child);
            }
        }
        Ok(out)
    }

    /// Rewrites `truth.jsonl` from the finished children; returns how many it holds.
    pub fn collect(&self) -> Result<usize> {
        let finished = self.finished()?;
        let mut text = String::new();
        for child in finished.values() {
            text += &serde_json::to_string(child)?;
            text.push('\n');
        }
        write_atomic(&self.root.join("truth.jsonl"), text.as_bytes())?;
        Ok(finished.len())
    }

    /// Trains worker `worker` of `workers`' share of the children that have no file yet.
    pub fn work(&self, worker: usize, workers: usize, device: Device, progress: &Progress) -> Result<()> {
        let settings = &self.spec.settings;
        let data = RunData::load(settings)?;
        let kind = crate::supernet::space_kind(settings, &data)?;
        let space = Space::full(kind.clone());
        let todo: Vec<usize> = (0..self.spec.children.len())
            .filter(|i| i % workers == worker && !self.child_path(*i).exists())
            .collect();
        let bar = progress.bar(todo.len() as u64, "children");
        for index in todo {
            let arch = space.parse_arch(&self.spec.children[index])?;
            let child = train_child(&data, &kind, &arch, settings, device, &Progress::silent())?;
            let record = ChildTruth { index, ..child };
            progress.event("truth_child", json!(record));
            bar.println(format!("{:>5} {} {:.4}", index, record.arch, record.test_accuracy));
            write_json(&self.child_path(index), &record)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(())
    }
}

/// Trains one child stand-alone as `pwsnas train` does (same seed stream, same schedule) and
/// measures it on the test split.
pub fn train_child(
    data: &RunData,
    kind: &pwsnas_models::SpaceKind,
    arch: &pwsnas_models::Arch,
    settings: &Settings,
    device: Device,
    progress: &Progress,
) -> Result<ChildTruth> {
    let cfg = &settings.retrain;
    let start = Instant::now();
    let seed = crate::retrain::standalone_seed(settings.seed);
    tch::manual_seed(seed as i64);
    let net = Supernet::initialised(&pwsnas_models::Space::single(kind.clone(), arch), device, cfg.init);
    let aux = crate::retrain::aux_head(kind, cfg, device)?;
    let mut sgd = Sgd::new(cfg);
    let (mut loss, mut train_accuracy) = (f64::NAN, f64::NAN);
    for epoch in 0..cfg.epochs {
        let log = crate::retrain::standalone_epoch(
            &net,
            aux.as_ref(),
            &mut sgd,
            cfg,
            data,
            device,
            seed,
            epoch,
            arch,
            progress,
            "truth",
        );
        (loss, train_accuracy) = (log.loss, log.train_accuracy);
    }
    let test_accuracy =
        accuracy(&data.test, &data.norm, None, 256, device, |x| net.forward(x, arch, Mode::EVAL));
    let cost = kind.cost(arch);
    Ok(ChildTruth {
        index: 0,
        arch: kind.format_arch(arch),
        test_accuracy,
        test_images: data.test.len(),
        train_accuracy,
        loss,
        epochs: cfg.epochs,
        seed: settings.seed,
        params: net.param_count(),
        flops: cost.flops(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// `I/J`: worker I of J.
pub fn parse_worker(s: &str) -> Result<(usize, usize)> {
    let parsed = s.split_once('/').and_then(|(i, j)| Some((i.trim().parse().ok()?, j.trim().parse().ok()?)));
    match parsed {
        Some((i, j)) if j > 0 && i < j => Ok((i, j)),
        _ => bail!("--worker '{s}': expected I/J with 0 <= I < J, e.g. 0/4"),
    }
}

/// Runs the J workers as processes of this binary here, each with `threads` intra-op threads, and
/// shows the children finished across all of them. Waits for every worker even when one fails, so
/// the others' children are kept; then names the failed workers' logs.
pub fn run_local(
    dir: &TruthDir,
    jobs: usize,
    threads: usize,
    device: &str,
    progress: &Progress,
) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the pwsnas binary to start the workers with")?;
    std::fs::create_dir_all(dir.root.join("logs"))?;
    let total = dir.spec.children.len();
    let mut workers: Vec<(usize, Child)> = Vec::new();
    for w in 0..jobs {
        let log = std::fs::File::create(dir.log_path(w))
            .with_context(|| format!("cannot write {}", dir.log_path(w).display()))?;
        let child = Command::new(&exe)
            .args(["--json", "fidelity", "truth", "--out"])
            .arg(&dir.root)
            .args(["--worker", &format!("{w}/{jobs}"), "--device", device])
            .env("OMP_NUM_THREADS", threads.to_string())
            .env("MKL_NUM_THREADS", threads.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        workers.push((w, child));
    }
    let bar = progress.bar(total as u64, "children");
    let mut failed = Vec::new();
    while !workers.is_empty() {
        std::thread::sleep(Duration::from_millis(500));
        let done = (0..total).filter(|&i| dir.child_path(i).exists()).count();
        bar.set_position(done as u64);
        let mut running = Vec::new();
        for (w, mut child) in workers {
            match child.try_wait()? {
                None => running.push((w, child)),
                Some(status) if status.success() => {}
                Some(status) => failed
                    .push(format!("worker {w} ended with {status} (log: {})", dir.log_path(w).display())),
            }
        }
        workers = running;
    }
    bar.finish_and_clear();
    if !failed.is_empty() {
        bail!("{}; the children the workers finished are kept: rerun to train the rest", failed.join("; "));
    }
    Ok(())
}

/// The sbatch script of the workers: array task I runs worker I of `jobs`.
pub fn slurm_script(dir: &TruthDir, jobs: usize, threads: usize, device: &str) -> Result<String> {
    let root = std::path::absolute(&dir.root)?;
    let exe = std::env::current_exe().context("cannot find the pwsnas binary for the Slurm tasks")?;
    let q = |p: &Path| crate::sweep::slurm::quote(p);
    Ok(format!(
        "#!/bin/bash\n\
         # pwsnas fidelity truth: {jobs} workers over the {n} children of {root}, one array task each.\n\
         # Task I trains the children with index mod {jobs} = I that have no file yet; rerun\n\
         # `pwsnas fidelity truth --out {root}` after the job to collect truth.jsonl.\n\
         #SBATCH --job-name=pwsnas-truth\n\
         #SBATCH --array=0-{last}\n\
         #SBATCH --cpus-per-task={threads}\n\
         #SBATCH --output={log}\n\
         export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}\n\
         exec {exe} --json fidelity truth --out {qroot} --worker \"$SLURM_ARRAY_TASK_ID/{jobs}\" --device {device}\n",
        n = dir.spec.children.len(),
        root = root.display(),
        last = jobs - 1,
        log = root.join("logs/worker-%a.log").display(),
        exe = q(&exe)?,
        qroot = q(&root)?,
        device = shlex::try_quote(device)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_specs_are_checked() {
        assert_eq!(parse_worker("1/4").unwrap(), (1, 4));
        for bad in ["4/4", "1", "a/2", "0/0", "-1/2"] {
            let e = parse_worker(bad).unwrap_err().to_string();
            assert!(e.contains("expected I/J"), "{bad}: {e}");
        }
    }
}
