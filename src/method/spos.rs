//! SPOS (Guo et al., ECCV 2020): one-shot. The shrinking supernet trains one child drawn uniformly
//! per step (unless the `sampler` setting says otherwise), and evolution (or random search,
//! `search.strategy`) over its weights finds the child (`crate::search`).
use super::{SearchMethod, Training};

/// SPOS.
pub struct Spos;

impl SearchMethod for Spos {
    fn name(&self) -> &'static str {
        "spos"
    }

    fn training(&self) -> Training {
        Training::OneShot { sampler: None }
    }
}
