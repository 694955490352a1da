//! The search methods (`search.method`, `--method`), one file each behind [`SearchMethod`]: SPOS
//! ([`spos`]) and FairNAS ([`fairnas`]) are one-shot: evolution over the shrinking supernet
//! (`crate::search`), trained by the sampler that defines them; DARTS ([`darts`]), PDARTS
//! ([`pdarts`]) and ProxylessNAS ([`proxyless`]) are gradient-based: they run [`gradient`]'s loop on
//! the space shrinking leaves.
//!
//! Why a trait and a registry: a method is what it checks in the settings, how its weights are
//! trained, its steps, its stages and how it derives the child; everything else (checkpoints,
//! resume, `method.json`, the evaluation of the derived child) is shared. [`Method`] stays the name
//! settings, flags and files use, and [`Method::def`], the one `match` over methods, registers
//! each name's definition. Adding a method is its file and one registration here.
//!
//! As in ABS's code (Hu et al., ECCV 2020), a gradient-based method trains its own supernet from
//! fresh weights on the space shrinking left (the full space with `--shrink none`, the paper's
//! baseline, where no shrinking supernet is trained at all), and derives a child by its rule (the
//! space's, `SpaceDef::derive_child`, unless the method has its own). The child goes into
//! `arch.json`, so retraining and export take it unchanged.
pub mod alpha;
pub mod darts;
pub mod fairnas;
pub mod gradient;
pub mod pdarts;
pub mod proxyless;
pub mod settings;
pub mod spos;

use anyhow::Result;
use pwsnas_models::{Arch, Space, SpaceKind};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::data::RunData;
use crate::progress::Progress;
use crate::run::RunDir;
use crate::search::constraints::Constraints;
use crate::search::ArchFile;
use crate::settings::{Sampler, Settings};
use crate::{search, shrink, supernet};
pub use gradient::{
    weight_cfg, MethodEpoch, MethodNet, MethodReport, MethodState, Schedule, StageSpace, Step,
};
use proxyless::LatencyModel;
use settings::GradientSettings;

/// The search method run after the (optional) shrinking stage: its name in settings, on the
/// command line and in `method.json`. What it does is [`Method::def`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// SPOS (Guo et al., ECCV 2020): evolution over the uniformly trained supernet.
    Spos,
    /// FairNAS (Chu et al., ICCV 2021): evolution over the strictly fair supernet (`sampler = fair`).
    Fairnas,
    /// DARTS (Liu et al., ICLR 2019): softmax-relaxed α, first-order alternating updates.
    Darts,
    /// PDARTS (Chen et al., ICCV 2019): DARTS in stages, the weakest ops dropped between stages.
    Pdarts,
    /// ProxylessNAS (Cai et al., ICLR 2019): binary gates over two sampled ops, a latency loss.
    Proxyless,
}

impl Method {
    /// The method's definition: the registry of methods.
    pub fn def(self) -> &'static dyn SearchMethod {
        match self {
            Method::Spos => &spos::Spos,
            Method::Fairnas => &fairnas::Fairnas,
            Method::Darts => &darts::Darts,
            Method::Pdarts => &pdarts::Pdarts,
            Method::Proxyless => &proxyless::Proxyless,
        }
    }

    pub fn name(self) -> &'static str {
        self.def().name()
    }
}

/// How a method trains its weights, and so which stages `pwsnas search` runs before it finds the
/// child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Training {
    /// One-shot: the shrinking supernet, trained by `sampler` where the method is defined by one
    /// (FairNAS: fair; `Settings::sampler_follows_method` sets the `sampler` setting to it) or else
    /// by the `sampler` setting's, then searched by evolution or random search (`crate::search`).
    OneShot { sampler: Option<Sampler> },
    /// Gradient-based: a network of its own from fresh weights on the space shrinking leaves,
    /// trained with α by [`gradient`]'s loop, an α step every `alpha_every` weight steps unless
    /// `gradient.alpha_every` says otherwise; the `[gradient]` settings shape it.
    Gradient { alpha_every: usize },
}

/// A search method. One file each; registered in [`Method::def`].
pub trait SearchMethod: Sync {
    /// Its name: `--method`'s and `search.method`'s value (the `Method` variant's), and how
    /// `method.json`, the progress lines and the errors name it.
    fn name(&self) -> &'static str;

    /// How its weights are trained.
    fn training(&self) -> Training;

    /// Refuses settings that do not fit the method, naming the setting (`Settings::validate` calls
    /// it with the run's space). By default the settings other methods own: DARTS's second order
    /// and PDARTS's schedule.
    fn check(&self, settings: &Settings, _kind: &SpaceKind) -> Result<()> {
        darts::refuse_second_order(settings)?;
        pdarts::refuse_schedule(settings)
    }

    // The hooks of [`gradient`]'s loop, for a gradient-based method (a one-shot method never
    // reaches them). Their defaults are DARTS's: one stage, the α and weight steps of the mix
    // weighted by softmax(α), the space's rule for the child.

    /// The latency term of its α loss, from the starting space and the run's latency predictor
    /// (ProxylessNAS: the model of E[lat] and `gradient.target_latency_ms`); none by default.
    fn latency(
        &self,
        _g: &GradientSettings,
        _start: &Space,
        _constraints: &Constraints,
    ) -> Result<Option<(LatencyModel, f64)>> {
        Ok(None)
    }

    /// How many stages it runs (one by default).
    fn stages(&self, _g: &GradientSettings) -> usize {
        1
    }

    /// The space stage `stage` builds its network on, from `from`: the starting space for the first
    /// (`probs` is `None`), else the previous stage's space and its last softmax(α). The starting
    /// space by default.
    fn stage_space(
        &self,
        _g: &GradientSettings,
        from: &Space,
        _probs: Option<&[Vec<f64>]>,
        _stage: usize,
    ) -> StageSpace {
        StageSpace { space: from.clone(), note: None }
    }

    /// What epoch `epoch` of stage `stage` does besides its steps (PDARTS: skip dropout,
    /// weights-only epochs); nothing by default.
    fn schedule(&self, _g: &GradientSettings, _stage: usize, _epoch: usize) -> Schedule {
        Schedule::default()
    }

    /// One α step on the α batch `alpha`.
    fn alpha_step(&self, net: &mut MethodNet, step: &mut Step<'_>, alpha: (&Tensor, &Tensor)) {
        darts::alpha_step_of(net, step, alpha);
    }

    /// One weight step on the step's weight batch; returns its loss and its number of correct
    /// predictions.
    fn weight_step(&self, net: &mut MethodNet, step: &mut Step<'_>) -> (f64, f64) {
        darts::weight_step_of(net, step)
    }

    /// The child it derives from softmax(α) `probs` of `space`: the space's rule by default
    /// (`SpaceDef::derive_child`).
    fn derive(&self, _g: &GradientSettings, space: &Space, probs: &[Vec<f64>]) -> Arch {
        space.derive_child(probs)
    }
}

/// `pwsnas search`'s search stage, by the run's method: trains what the method trains (see
/// [`Training`]) and returns the child it finds (`arch.json`).
pub fn run_stage(
    run: &mut RunDir,
    data: &RunData,
    device: Device,
    constraints: Constraints,
    progress: &Progress,
) -> Result<ArchFile> {
    let method = run.info.settings.search.method.def();
    match method.training() {
        Training::OneShot { .. } => {
            let mut sn = supernet::run_stage(run, data, device, progress)?;
            let space = shrink::run_stage(run, &mut sn, data, device, &constraints, progress)?;
            search::run_stage(run, &sn.net, &space, data, device, constraints, progress)
        }
        Training::Gradient { alpha_every } => {
            gradient::run_stage(method, alpha_every, run, data, device, constraints, progress)
        }
    }
}

/// The settings besides `[search]` that shape the search stage of `settings`' method, for the
/// stage's fingerprint (`crate::run`): a gradient-based method's `[gradient]`.
pub fn own_settings(settings: &Settings) -> Option<(&'static str, serde_json::Value)> {
    match settings.search.method.def().training() {
        Training::OneShot { .. } => None,
        Training::Gradient { .. } => Some(("gradient", serde_json::json!(settings.gradient))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_method_is_registered_under_its_own_name() {
        for method in Method::value_variants() {
            let name = method.def().name();
            assert_eq!(method.to_possible_value().unwrap().get_name(), name);
            assert_eq!(serde_json::json!(method), name);
        }
    }
}
