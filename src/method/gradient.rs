//! The gradient-based methods' training loop (DARTS, PDARTS, ProxylessNAS): a network of the
//! method's own from fresh weights on the space shrinking left (the run's space with `--shrink
//! none`), weight steps on one half of the training split alternating with α steps on the other
//! half, stage after stage, then the child the method derives. What differs between methods, their
//! steps, stages, epoch schedule and rule for the child, comes from their [`SearchMethod`] hooks;
//! what is shared (batches, learning rate, checkpoints, resume, `method.json`, the evaluation of
//! the child) is here.
//!
//! State and resume: the method's network, its SGD momentum, α and Adam's moments and step count
//! are checkpointed together after every epoch (`method/last.safetensors`); a killed run continues
//! from the last finished epoch, and because every epoch's batches and samples come from generators
//! seeded by (seed, stage, epoch) it derives what an uninterrupted run derives. `method.json`
//! records softmax(α) of every choice point after every epoch (the trajectory).
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use indexmap::IndexMap;
use pwsnas_datasets::{batches, Dataset, Order};
use pwsnas_models::{Mode, Space, Supernet};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Device, Tensor};

use super::alpha::{Adam, Alphas};
use super::proxyless::LatencyModel;
use super::settings::GradientSettings;
use super::{Method, SearchMethod};
use crate::data::{to_tensors, RunData};
use crate::eval::Evaluator;
use crate::fsutil::{read_json, write_json};
use crate::progress::Progress;
use crate::run::{RunDir, Stage};
use crate::search::constraints::Constraints;
use crate::search::ArchFile;
use crate::settings::{Metric, Settings, TrainSettings};
use crate::train::checkpoint;
use crate::train::derive_seed;
use crate::train::sgd::Sgd;
use crate::{shrink, supernet};

/// One epoch of a method, as `method.json` records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MethodEpoch {
    pub stage: usize,
    pub epoch: usize,
    pub weight_steps: usize,
    pub alpha_steps: usize,
    /// Mean training loss of the weight steps.
    pub loss: f64,
    pub train_accuracy: f64,
    /// softmax(α) after the epoch: choice point → op → probability.
    pub probs: IndexMap<String, IndexMap<String, f64>>,
    /// The child the method derives from them.
    pub derived: String,
    /// ProxylessNAS: E[lat] (ms) under those probabilities.
    pub expected_latency_ms: Option<f64>,
    /// PDARTS: the dropout probability on `skip_connect` in the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_dropout: Option<f64>,
    pub seconds: f64,
}

/// What the method checkpoint records besides the tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodState {
    pub method: Method,
    /// The method's starting space (what shrinking left).
    pub built_space: serde_json::Value,
    /// The current stage's space, which the network is built from (PDARTS narrows it and may
    /// deepen it stage by stage).
    pub space: serde_json::Value,
    /// Current stage and the epochs completed in it.
    pub stage: usize,
    pub epoch: usize,
    pub adam_steps: usize,
    pub history: Vec<MethodEpoch>,
}

/// `method.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodReport {
    pub method: Method,
    pub history: Vec<MethodEpoch>,
    pub derived: Option<String>,
}

/// The method's network and optimisers: what its steps change.
pub struct MethodNet {
    pub supernet: Supernet,
    pub sgd: Sgd,
    pub alphas: Alphas,
    pub adam: Adam,
    /// The space the network is built on (the current stage's).
    pub space: Space,
}

/// What one step reads besides the network: plain data the loop hands the method's steps.
pub struct Step<'a> {
    pub g: &'a GradientSettings,
    /// SGD settings of the weight steps, and the learning rate at this step.
    pub cfg: &'a TrainSettings,
    pub lr: f64,
    /// The epoch's training forward (it carries PDARTS's skip dropout).
    pub mode: Mode,
    /// The weight batch (x, y).
    pub batch: (&'a Tensor, &'a Tensor),
    /// The latency term: ProxylessNAS's model of E[lat] and its target.
    pub latency: Option<&'a (LatencyModel, f64)>,
    /// The epoch's generator of sampled gates (ProxylessNAS).
    pub rng: &'a mut ChaCha8Rng,
}

/// What an epoch does besides its steps (PDARTS's schedule); the default: no skip dropout, α
/// trained.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Schedule {
    /// The dropout probability on `skip_connect` in every training forward.
    pub skip_dropout: Option<f64>,
    /// Weight steps only: α stays as it is.
    pub weights_only: bool,
}

/// The space a stage's network is built on, and a line that says what the stage kept.
pub struct StageSpace {
    pub space: Space,
    pub note: Option<String>,
}

/// The method's network, optimisers and what the checkpoint records besides.
struct MethodRun {
    net: MethodNet,
    state: MethodState,
}

/// SGD settings of the weight steps.
pub fn weight_cfg(settings: &Settings) -> TrainSettings {
    let g = &settings.gradient;
    TrainSettings {
        epochs: g.epochs,
        batch_size: g.batch_size,
        lr: g.w_lr,
        momentum: g.w_momentum,
        nesterov: false,
        weight_decay: g.w_weight_decay,
        grad_clip: Some(g.w_grad_clip),
        steps_per_epoch: g.steps_per_epoch,
        ..TrainSettings::default()
    }
}

impl MethodRun {
    /// The run the checkpoint in `dir` holds, which must be of this method and starting space; else
    /// a fresh run on the first stage's space.
    fn open(
        method: &dyn SearchMethod,
        dir: &Path,
        settings: &Settings,
        start: &Space,
        device: Device,
    ) -> Result<MethodRun> {
        let g = &settings.gradient;
        let mut sgd = Sgd::new(&weight_cfg(settings));
        if let Some((state, tensors)) = checkpoint::read_state::<MethodState>(dir)? {
            let built = Space::from_json(state.built_space.clone())?;
            if &built != start || state.method != settings.search.method {
                anyhow::bail!(
                    "the method checkpoint in {} is for another method or space: rerun with --force",
                    dir.display()
                );
            }
            let space = Space::from_json(state.space.clone())?;
            let supernet = Supernet::new(&space, device);
            checkpoint::restore(&tensors, &supernet, None, &mut sgd, device)?;
            let alphas = Alphas::load(&tensors, &space, device).context("the method checkpoint")?;
            let mut adam = Adam::for_alphas(g, &alphas);
            adam.load_state(&tensors, state.adam_steps, device)?;
            return Ok(MethodRun { net: MethodNet { supernet, sgd, alphas, adam, space }, state });
        }
        let space = method.stage_space(g, start, None, 0).space;
        let state = MethodState {
            method: settings.search.method,
            built_space: start.to_json(),
            space: space.to_json(),
            stage: 0,
            epoch: 0,
            adam_steps: 0,
            history: Vec::new(),
        };
        Ok(MethodRun::fresh(settings, space, state, device))
    }

    /// A stage's network, SGD, α and Adam from scratch on `space` (PDARTS builds each stage's
    /// network afresh; the weights' seed depends on the stage).
    fn fresh(settings: &Settings, space: Space, state: MethodState, device: Device) -> MethodRun {
        let g = &settings.gradient;
        let stage = state.stage as u64;
        tch::manual_seed(derive_seed(settings.seed, "method-weights", stage) as i64);
        let supernet = Supernet::initialised(&space, device, settings.supernet.init);
        let alphas = Alphas::init(&space, derive_seed(settings.seed, "method-alpha", stage), device);
        let adam = Adam::for_alphas(g, &alphas);
        let sgd = Sgd::new(&weight_cfg(settings));
        MethodRun { net: MethodNet { supernet, sgd, alphas, adam, space }, state }
    }

    fn save(&mut self, dir: &Path) -> Result<()> {
        self.state.space = self.net.space.to_json();
        self.state.adam_steps = self.net.adam.steps;
        let mut extra = self.net.alphas.named();
        extra.extend(self.net.adam.state());
        checkpoint::save_with(dir, &self.net.supernet, &self.net.sgd, extra, &self.state)
    }
}

/// Splits the training split into a weight half and an α half (seeded, the same on resume).
fn halves(data: &RunData, seed: u64) -> (Dataset, Dataset) {
    let mut idx: Vec<usize> = (0..data.train.len()).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(seed, "method-split", 0)));
    let mid = idx.len() / 2;
    (data.train.subset(&idx[..mid]), data.train.subset(&idx[mid..]))
}

/// What every epoch of a run reads: plain data, fixed for the run.
struct Plan<'a> {
    method: &'static dyn SearchMethod,
    settings: &'a Settings,
    data: &'a RunData,
    /// The weight half and the α half of the training split.
    halves: (Dataset, Dataset),
    cfg: TrainSettings,
    /// Weight steps per α step, and per epoch.
    every: usize,
    steps: usize,
    latency: Option<(LatencyModel, f64)>,
    device: Device,
    progress: &'a Progress,
}

/// `pwsnas search`'s search stage for a gradient-based method, which takes an α step every
/// `alpha_every` weight steps unless `gradient.alpha_every` says otherwise: its starting space (what
/// shrinking leaves; without shrinking, the run's space, and no shrinking supernet is trained),
/// every stage's epochs, then the derived child, which it returns.
pub fn run_stage(
    method: &'static dyn SearchMethod,
    alpha_every: usize,
    run: &mut RunDir,
    data: &RunData,
    device: Device,
    constraints: Constraints,
    progress: &Progress,
) -> Result<ArchFile> {
    let settings = run.info.settings.clone();
    let start = if settings.shrink.metric == Metric::None {
        supernet::initial_space(&settings, &supernet::space_kind(&settings, data)?)?
    } else {
        let mut sn = supernet::run_stage(run, data, device, progress)?;
        shrink::run_stage(run, &mut sn, data, device, &constraints, progress)?
    };
    if run.is_done(Stage::Search) {
        return read_json(&run.path("arch.json"));
    }
    run.begin(Stage::Search)?;
    let g = &settings.gradient;
    let dir = run.path("method");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let latency = method.latency(g, &start, &constraints)?;
    let mut mr = MethodRun::open(method, &dir, &settings, &start, device)?;
    let halves = halves(data, settings.seed);
    let cfg = weight_cfg(&settings);
    let every = g.alpha_every.unwrap_or(alpha_every);
    let steps = (halves.0.len() / g.batch_size).min(g.steps_per_epoch.unwrap_or(usize::MAX)).max(1);
    progress.info(format!(
        "{}: {} stage(s) of {} epochs over {} children, {} weight steps per epoch, an α step every {every}",
        method.name(),
        method.stages(g),
        g.epochs,
        start.size(),
        steps
    ));
    let plan =
        Plan { method, settings: &settings, data, halves, cfg, every, steps, latency, device, progress };
    let report = run.path("method.json");
    train(&mut mr, &plan, &dir, &report)?;
    finish(mr, &plan, &start, run, &report, constraints)
}

/// Every stage's epochs from where the run stands, each epoch checkpointed into `dir` and
/// recorded in `method.json` (`report`); a stage after the first starts on a new network.
fn train(mr: &mut MethodRun, plan: &Plan, dir: &Path, report: &Path) -> Result<()> {
    let (method, g) = (plan.method, &plan.settings.gradient);
    let stages = method.stages(g);
    while mr.state.stage < stages {
        while mr.state.epoch < g.epochs {
            let record = epoch(mr, plan);
            plan.progress.info(format!(
                "{} stage {} epoch {}: loss {:.4}, train acc {:.3}, derived {}{}",
                method.name(),
                record.stage,
                record.epoch + 1,
                record.loss,
                record.train_accuracy,
                record.derived,
                record.expected_latency_ms.map(|ms| format!(", E[latency] {ms:.4} ms")).unwrap_or_default()
            ));
            mr.state.history.push(record);
            mr.state.epoch += 1;
            mr.save(dir)?;
            let history = mr.state.history.clone();
            write_json(
                report,
                &MethodReport { method: plan.settings.search.method, history, derived: None },
            )?;
        }
        let mut state = mr.state.clone();
        state.stage += 1;
        state.epoch = 0;
        if state.stage < stages {
            let next = method.stage_space(g, &mr.net.space, Some(&mr.net.alphas.probs()), state.stage);
            *mr = MethodRun::fresh(plan.settings, next.space, state, plan.device);
            if let Some(note) = next.note {
                plan.progress.info(note);
            }
        } else {
            mr.state = state;
        }
        mr.save(dir)?;
    }
    Ok(())
}

/// The child the method derives from the last α, checked and evaluated as a child of the starting
/// space `start` with the method's weights; writes `method.json` (`report`) and `arch.json`, and
/// finishes the stage.
fn finish(
    mr: MethodRun,
    plan: &Plan,
    start: &Space,
    run: &mut RunDir,
    report: &Path,
    constraints: Constraints,
) -> Result<ArchFile> {
    let (settings, name) = (plan.settings, plan.method.name());
    let g = &settings.gradient;
    let arch = plan.method.derive(g, &mr.net.space, &mr.net.alphas.probs());
    // The child as a child of the method's starting space (PDARTS may have searched it deeper).
    let space = Space { kind: start.kind.clone(), choices: mr.net.space.choices.clone() };
    space.check_child(&arch).with_context(|| format!("the child {name} derived"))?;
    constraints.check_derived(name, &space, &arch)?;
    let (search, seed) = (&settings.search, settings.seed);
    let evaluator =
        Evaluator::new(plan.data, search.bn_batches, g.batch_size, search.val_images, seed, plan.device);
    let accuracy = evaluator.accuracy(&mr.net.supernet, &arch);
    let facts = constraints.facts(&space, &arch);
    let text = space.format_arch(&arch);
    let (method, history) = (search.method, mr.state.history);
    write_json(report, &MethodReport { method, history, derived: Some(text.clone()) })?;
    let file = ArchFile {
        space: start.kind.name().to_string(),
        params: start.kind.params_json(),
        arch: text.clone(),
        flops: facts.flops,
        params_count: facts.params,
        supernet_accuracy: Some(accuracy),
        predicted_latency_ms: facts.latency_ms,
        benchmark: None,
    };
    write_json(&run.path("arch.json"), &file)?;
    plan.progress.info(format!(
        "{name}: derived {text} (accuracy with the method's weights {accuracy:.4}, {:.2} MFLOPs)",
        facts.flops / 1e6
    ));
    run.finish(Stage::Search, json!({ "method": name, "arch": text, "supernet_accuracy": accuracy }))?;
    Ok(file)
}

/// The sums of an epoch's steps.
#[derive(Default)]
struct Tally {
    loss_sum: f64,
    correct: f64,
    seen: usize,
    alpha_steps: usize,
    weight_steps: usize,
}

/// One epoch of the method: weight steps on the weight half, an α step every `every` of them on the
/// α half (none in a weights-only epoch), the learning rate cosine-annealed over all the stage's
/// steps.
fn epoch(mr: &mut MethodRun, plan: &Plan) -> MethodEpoch {
    let (method, settings, data) = (plan.method, plan.settings, plan.data);
    let g = &settings.gradient;
    let (stage, ep) = (mr.state.stage, mr.state.epoch);
    let seed = |name: &str| derive_seed(settings.seed, name, (stage * 10_000 + ep) as u64);
    let start = Instant::now();
    let (w_half, a_half) = &plan.halves;
    let (norm, augment, bs) = (&data.norm, &data.augment, g.batch_size);
    let mut w_batches = batches(w_half, norm, bs, Order::Shuffled, augment, true, seed("method-w"));
    // The α half is at least as large as the weight half, so it never runs out first.
    let mut a_batches = batches(a_half, norm, bs, Order::Shuffled, augment, true, seed("method-a"));
    let mut rng = ChaCha8Rng::seed_from_u64(seed("method-gates"));
    let bar = plan.progress.bar(plan.steps as u64, &format!("{} {}.{}", method.name(), stage, ep + 1));
    let schedule = method.schedule(g, stage, ep);
    let mode = Mode::TRAIN.with_skip_dropout(schedule.skip_dropout.unwrap_or(0.0));
    let mut tally = Tally::default();
    for i in 0..plan.steps {
        let Some(wb) = w_batches.next() else { break };
        let (x, y) = to_tensors(&wb, plan.device);
        let lr = cosine_lr(g, ep * plan.steps + i, plan.steps * g.epochs);
        let mut step = Step {
            g,
            cfg: &plan.cfg,
            lr,
            mode,
            batch: (&x, &y),
            latency: plan.latency.as_ref(),
            rng: &mut rng,
        };
        if !schedule.weights_only && i % plan.every == 0 {
            let Some(ab) = a_batches.next() else { break };
            let (xa, ya) = to_tensors(&ab, plan.device);
            method.alpha_step(&mut mr.net, &mut step, (&xa, &ya));
            tally.alpha_steps += 1;
        }
        let (loss, right) = method.weight_step(&mut mr.net, &mut step);
        tally.loss_sum += loss;
        tally.correct += right;
        tally.seen += wb.n;
        tally.weight_steps += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    record(&mr.net, plan, (stage, ep), &tally, schedule.skip_dropout, start)
}

/// The weights' learning rate at step `t` of `total`: cosine from `w_lr` to `w_lr_min`.
fn cosine_lr(g: &GradientSettings, t: usize, total: usize) -> f64 {
    g.w_lr_min + (g.w_lr - g.w_lr_min) * 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / total as f64).cos())
}

/// The epoch as `method.json` records it: its sums, softmax(α) after it and the child the method
/// derives from them.
fn record(
    net: &MethodNet,
    plan: &Plan,
    (stage, epoch): (usize, usize),
    tally: &Tally,
    skip_dropout: Option<f64>,
    start: Instant,
) -> MethodEpoch {
    let probs = net.alphas.probs();
    let named = net
        .space
        .choices
        .iter()
        .zip(&probs)
        .map(|(cp, p)| (cp.name.clone(), cp.ops.iter().zip(p).map(|(op, v)| (op.name(), *v)).collect()))
        .collect();
    let done = tally.weight_steps;
    MethodEpoch {
        stage,
        epoch,
        weight_steps: done,
        alpha_steps: tally.alpha_steps,
        loss: if done > 0 { tally.loss_sum / done as f64 } else { 0.0 },
        train_accuracy: if tally.seen > 0 { tally.correct / tally.seen as f64 } else { 0.0 },
        probs: named,
        derived: net.space.format_arch(&plan.method.derive(&plan.settings.gradient, &net.space, &probs)),
        expected_latency_ms: plan.latency.as_ref().map(|(m, _)| m.expected(&probs)),
        skip_dropout,
        seconds: start.elapsed().as_secs_f64(),
    }
}
