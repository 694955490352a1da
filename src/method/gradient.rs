//! The gradient-based methods' training loop: DARTS, PDARTS and ProxylessNAS train a network of
//! their own from fresh weights on the space shrinking left, alternating weight steps on one half of
//! the training split with α steps on the other half, then derive a child.
//!
//! State and resume: the method's network, its SGD momentum, α and Adam's moments and step count
//! are checkpointed together after every epoch (`method/last.safetensors`); a killed run continues
//! from the last finished epoch, and because every epoch's batches and samples come from generators
//! seeded by (seed, stage, epoch) it derives what an uninterrupted run derives. `method.json`
//! records softmax(α) of every choice point after every epoch (the trajectory).
use std::time::Instant;

use anyhow::{Context, Result};
use indexmap::IndexMap;
use pwsnas_datasets::{batches, Dataset, Order};
use pwsnas_models::{Arch, Mode, Space, Supernet};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::Device;

use super::alpha::{Adam, Alphas};
use super::proxyless::LatencyModel;
use super::{darts, pdarts, proxyless, Method};
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
    /// The child the space's rule derives from them.
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

/// The method's network, optimisers and state.
struct MethodRun {
    net: Supernet,
    sgd: Sgd,
    alphas: Alphas,
    adam: Adam,
    space: Space,
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
    fn open(dir: &std::path::Path, settings: &Settings, start: &Space, device: Device) -> Result<MethodRun> {
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
            let net = Supernet::new(&space, device);
            checkpoint::restore(&tensors, &net, None, &mut sgd, device)?;
            let alphas = Alphas::load(&tensors, &space, device).context("the method checkpoint")?;
            let mut adam = Adam::for_alphas(g, &alphas);
            adam.load_state(&tensors, state.adam_steps, device)?;
            return Ok(MethodRun { net, sgd, alphas, adam, space, state });
        }
        let space = pdarts::at_depth(settings, start, 0);
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
        let net = Supernet::initialised(&space, device, settings.supernet.init);
        let alphas = Alphas::init(&space, derive_seed(settings.seed, "method-alpha", stage), device);
        let adam = Adam::for_alphas(g, &alphas);
        MethodRun { net, sgd: Sgd::new(&weight_cfg(settings)), alphas, adam, space, state }
    }

    fn save(&mut self, dir: &std::path::Path) -> Result<()> {
        self.state.space = self.space.to_json();
        self.state.adam_steps = self.adam.steps;
        let mut extra = self.alphas.named();
        extra.extend(self.adam.state());
        checkpoint::save_with(dir, &self.net, &self.sgd, extra, &self.state)
    }

    /// The derived child of the current α by the method's rule.
    fn derive(&self, settings: &Settings) -> Arch {
        let probs = self.alphas.probs();
        if settings.search.method == Method::Pdarts {
            pdarts::cap_skips(&self.space, &probs, settings.gradient.max_skip)
        } else {
            self.space.derive_child(&probs)
        }
    }
}

/// Splits the training split into a weight half and an α half (seeded, the same on resume).
fn halves(data: &RunData, seed: u64) -> (Dataset, Dataset) {
    let mut idx: Vec<usize> = (0..data.train.len()).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(seed, "method-split", 0)));
    let mid = idx.len() / 2;
    (data.train.subset(&idx[..mid]), data.train.subset(&idx[mid..]))
}

/// Number of stages of the method (PDARTS: one per entry of `pdarts_keep`, plus the first).
fn stages(settings: &Settings) -> usize {
    if settings.search.method == Method::Pdarts {
        settings.gradient.pdarts_stages()
    } else {
        1
    }
}

/// `pwsnas search`'s search stage for a gradient-based method, which takes an α step every
/// `alpha_every` weight steps unless `gradient.alpha_every` says otherwise: its starting space (what
/// shrinking leaves; without shrinking, the run's space, and no shrinking supernet is trained),
/// then [`train`]. Returns the derived child.
pub fn run_stage(
    run: &mut RunDir,
    data: &RunData,
    device: Device,
    constraints: Constraints,
    progress: &Progress,
    alpha_every: usize,
) -> Result<ArchFile> {
    let settings = run.info.settings.clone();
    let start = if settings.shrink.metric == Metric::None {
        supernet::initial_space(&settings, &supernet::space_kind(&settings, data)?)?
    } else {
        let mut sn = supernet::run_stage(run, data, device, progress)?;
        shrink::run_stage(run, &mut sn, data, device, &constraints, progress)?
    };
    train(run, &start, data, device, constraints, progress, alpha_every)
}

/// The method's training on `start` and the child it derives.
fn train(
    run: &mut RunDir,
    start: &Space,
    data: &RunData,
    device: Device,
    constraints: Constraints,
    progress: &Progress,
    alpha_every: usize,
) -> Result<ArchFile> {
    if run.is_done(Stage::Search) {
        return read_json(&run.path("arch.json"));
    }
    run.begin(Stage::Search)?;
    let settings = run.info.settings.clone();
    let method = settings.search.method;
    let g = &settings.gradient;
    let dir = run.path("method");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let latency = match (method, g.target_latency_ms) {
        (Method::Proxyless, Some(target)) => {
            let predictor = constraints.predictor.as_ref().context(
                "setting gradient.target_latency_ms needs the latency table of the run's space (ONNX Runtime could not measure one)",
            )?;
            let model = LatencyModel::new(start, predictor);
            model.check_target(target)?;
            Some((model, target))
        }
        _ => None,
    };
    let mut mr = MethodRun::open(&dir, &settings, start, device)?;
    let (w_half, a_half) = halves(data, settings.seed);
    let cfg = weight_cfg(&settings);
    let every = g.alpha_every.unwrap_or(alpha_every);
    let steps = (w_half.len() / g.batch_size).min(g.steps_per_epoch.unwrap_or(usize::MAX)).max(1);
    progress.info(format!(
        "{}: {} stage(s) of {} epochs over {} children, {} weight steps per epoch, an α step every {every}",
        method.name(),
        stages(&settings),
        g.epochs,
        start.size(),
        steps
    ));
    let report_path = run.path("method.json");
    while mr.state.stage < stages(&settings) {
        while mr.state.epoch < g.epochs {
            let record = epoch(
                &mut mr,
                &settings,
                data,
                (&w_half, &a_half),
                &cfg,
                every,
                steps,
                latency.as_ref(),
                progress,
            );
            progress.info(format!(
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
            mr.save(&dir)?;
            write_json(
                &report_path,
                &MethodReport { method, history: mr.state.history.clone(), derived: None },
            )?;
        }
        if mr.state.stage + 1 < stages(&settings) {
            let keep = g.pdarts_keep[mr.state.stage];
            let kept = pdarts::keep_strongest(&mr.space, &mr.alphas.probs(), keep);
            let next = pdarts::at_depth(&settings, &kept, mr.state.stage + 1);
            let mut state = mr.state.clone();
            state.stage += 1;
            state.epoch = 0;
            mr = MethodRun::fresh(&settings, next, state, device);
            progress.info(format!(
                "pdarts: stage {} keeps {keep} ops per choice point ({} children), on a new network ({})",
                mr.state.stage,
                mr.space.size(),
                mr.space.kind.params_json()
            ));
        } else {
            mr.state.stage += 1;
            mr.state.epoch = 0;
        }
        mr.save(&dir)?;
    }
    let arch = mr.derive(&settings);
    // The child as a child of the method's starting space (PDARTS may have searched it deeper).
    mr.space = Space { kind: start.kind.clone(), choices: mr.space.choices.clone() };
    mr.space.check_child(&arch).with_context(|| format!("the child {} derived", method.name()))?;
    constraints.check_derived(method.name(), &mr.space, &arch)?;
    let evaluator = Evaluator::new(
        data,
        settings.search.bn_batches,
        g.batch_size,
        settings.search.val_images,
        settings.seed,
        device,
    );
    let accuracy = evaluator.accuracy(&mr.net, &arch);
    let facts = constraints.facts(&mr.space, &arch);
    let text = mr.space.format_arch(&arch);
    write_json(
        &report_path,
        &MethodReport { method, history: mr.state.history.clone(), derived: Some(text.clone()) },
    )?;
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
    progress.info(format!(
        "{}: derived {text} (accuracy with the method's weights {accuracy:.4}, {:.2} MFLOPs)",
        method.name(),
        facts.flops / 1e6
    ));
    run.finish(
        Stage::Search,
        json!({ "method": method.name(), "arch": text, "supernet_accuracy": accuracy }),
    )?;
    Ok(file)
}

/// One epoch of the method: weight steps on the weight half, an α step every `every` of them on the
/// α half.
#[allow(clippy::too_many_arguments)]
fn epoch(
    mr: &mut MethodRun,
    settings: &Settings,
    data: &RunData,
    (w_half, a_half): (&Dataset, &Dataset),
    cfg: &TrainSettings,
    every: usize,
    steps: usize,
    latency: Option<&(LatencyModel, f64)>,
    progress: &Progress,
) -> MethodEpoch {
    let g = &settings.gradient;
    let method = settings.search.method;
    let (stage, ep) = (mr.state.stage, mr.state.epoch);
    let index = (stage * 10_000 + ep) as u64;
    let device = mr.net.device();
    let start = Instant::now();
    let bs = g.batch_size;
    let mut w_batches = batches(
        w_half,
        &data.norm,
        bs,
        Order::Shuffled,
        &data.augment,
        true,
        derive_seed(settings.seed, "method-w", index),
    );
    let a_seed = derive_seed(settings.seed, "method-a", index);
    // The α half is at least as large as the weight half, so it never runs out first.
    let mut a_batches = batches(a_half, &data.norm, bs, Order::Shuffled, &data.augment, true, a_seed);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(settings.seed, "method-gates", index));
    let bar = progress.bar(steps as u64, &format!("{} {}.{}", method.name(), stage, ep + 1));
    // PDARTS: dropout on skip_connect in every training forward, and weights-only epochs first.
    let pdarts = method == Method::Pdarts;
    let skip_dropout = pdarts.then(|| g.skip_dropout(stage, ep));
    let mode = Mode::TRAIN.with_skip_dropout(skip_dropout.unwrap_or(0.0));
    let train_alpha = !pdarts || ep >= g.weights_only_epochs();
    let (mut loss_sum, mut correct, mut seen, mut alpha_steps, mut done) = (0.0, 0.0, 0usize, 0usize, 0usize);
    let total = steps * g.epochs;
    for i in 0..steps {
        let Some(wb) = w_batches.next() else { break };
        let t = ep * steps + i;
        let lr = g.w_lr_min
            + (g.w_lr - g.w_lr_min) * 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / total as f64).cos());
        if train_alpha && i % every == 0 {
            let Some(ab) = a_batches.next() else { break };
            let (xa, ya) = to_tensors(&ab, device);
            match method {
                Method::Proxyless => {
                    let before: Vec<Vec<f64>> = mr
                        .alphas
                        .t
                        .iter()
                        .map(|a| Vec::<f64>::try_from(a.detach().to_kind(tch::Kind::Double)).expect("1-D"))
                        .collect();
                    let pairs = proxyless::sample_pairs(&mr.alphas.probs(), &mut rng);
                    let mix = proxyless::gated_mix(&mr.space, &mr.alphas, &pairs);
                    let (ce, _) = darts::loss(&mr.net, &mix, &xa, &ya, cfg, mode);
                    let loss = proxyless::with_latency(ce, latency.map(|(m, t)| (m, *t)), &mr.alphas, g);
                    let refs: Vec<&tch::Tensor> = mr.alphas.t.iter().collect();
                    let grads = tch::Tensor::run_backward(&[&loss], &refs, false, false);
                    mr.adam.step(&mr.alphas.t, &grads);
                    proxyless::rescale_pairs(&mr.alphas, &before, &pairs);
                }
                _ if g.darts_order == 2 => {
                    let (x, y) = to_tensors(&wb, device);
                    darts::alpha_step_unrolled(
                        &mr.net,
                        &mr.space,
                        &mr.alphas,
                        &mut mr.adam,
                        &mr.sgd,
                        (&x, &y),
                        (&xa, &ya),
                        cfg,
                        lr,
                    );
                }
                _ => {
                    darts::alpha_step(&mr.net, &mr.space, &mr.alphas, &mut mr.adam, (&xa, &ya), cfg, mode);
                }
            }
            alpha_steps += 1;
        }
        let (x, y) = to_tensors(&wb, device);
        let (loss, right) = match method {
            Method::Proxyless => {
                let pairs = proxyless::sample_pairs(&mr.alphas.probs(), &mut rng);
                let arch = proxyless::active_arch(&mr.space, &pairs);
                let step = crate::train::epoch::train_step(
                    &mr.net,
                    None,
                    &mut mr.sgd,
                    cfg,
                    &x,
                    &y,
                    &[arch],
                    lr,
                    Mode::TRAIN,
                );
                (step.loss_sum.double_value(&[]), step.correct.double_value(&[]))
            }
            _ => darts::weight_step(&mr.net, &mr.space, &mr.alphas, &mut mr.sgd, (&x, &y), cfg, lr, mode),
        };
        loss_sum += loss;
        correct += right;
        seen += wb.n;
        done += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let probs = mr.alphas.probs();
    let named = mr
        .space
        .choices
        .iter()
        .zip(&probs)
        .map(|(cp, p)| (cp.name.clone(), cp.ops.iter().zip(p).map(|(op, v)| (op.name(), *v)).collect()))
        .collect();
    MethodEpoch {
        stage,
        epoch: ep,
        weight_steps: done,
        alpha_steps,
        loss: if done > 0 { loss_sum / done as f64 } else { 0.0 },
        train_accuracy: if seen > 0 { correct / seen as f64 } else { 0.0 },
        probs: named,
        derived: mr.space.format_arch(&mr.derive(settings)),
        expected_latency_ms: latency.map(|(m, _)| m.expected(&probs)),
        skip_dropout,
        seconds: start.elapsed().as_secs_f64(),
    }
}
