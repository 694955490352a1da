//! FairNAS (Chu et al., ICCV 2021): SPOS's search over a supernet trained with strict fairness, the
//! fair sampler (`sampler = fair`, `crate::train::sampler`): every step's children together use
//! every op of every choice point.
//!
//! FairNAS is its sampler: `--method fairnas` and a sweep grid over `search.method` set `sampler`
//! to it unless they name one (`Settings::sampler_follows_method`, from [`Training::OneShot`]), and
//! another sampler is refused.
use anyhow::{bail, Result};
use pwsnas_models::SpaceKind;

use super::{SearchMethod, Training};
use crate::settings::{Sampler, Settings};

/// FairNAS.
pub struct Fairnas;

impl SearchMethod for Fairnas {
    fn name(&self) -> &'static str {
        "fairnas"
    }

    fn training(&self) -> Training {
        Training::OneShot { sampler: Some(Sampler::Fair) }
    }

    fn check(&self, settings: &Settings, _kind: &SpaceKind) -> Result<()> {
        super::darts::refuse_second_order(settings)?;
        super::pdarts::refuse_schedule(settings)?;
        if settings.sampler != Sampler::Fair {
            bail!("setting search.method = fairnas trains its supernet with sampler = fair, not {:?}: drop the sampler setting or set it to fair", settings.sampler);
        }
        Ok(())
    }
}
