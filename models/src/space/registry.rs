//! The registry: every space pwsnas knows, in one list. Adding a space is its own module (a
//! parameter type implementing [`SpaceDef`] and [`SpaceParams`]) plus one line in [`SPACES`]; the
//! CLI, `space.json` and the errors that list valid names read them from here.
use std::sync::Arc;

use super::def::{SpaceDef, SpaceParams};
use super::SpaceKind;
use crate::error::{ModelError, Result};
use crate::mobile::MobileParams;
use crate::nb201::Nb201Params;

/// One registered space: its name, and how to build it from a JSON object of parameters.
pub struct Registration {
    pub name: &'static str,
    parse: fn(serde_json::Value) -> serde_json::Result<Arc<dyn SpaceDef>>,
}

impl Registration {
    pub const fn of<P: SpaceParams>() -> Registration {
        Registration { name: P::NAME, parse: parse::<P> }
    }
}

fn parse<P: SpaceParams>(params: serde_json::Value) -> serde_json::Result<Arc<dyn SpaceDef>> {
    Ok(Arc::new(serde_json::from_value::<P>(params)?))
}

/// Every space, in the order the CLI lists them.
pub const SPACES: &[Registration] = &[Registration::of::<Nb201Params>(), Registration::of::<MobileParams>()];

/// The names of every space.
pub fn names() -> Vec<&'static str> {
    SPACES.iter().map(|r| r.name).collect()
}

/// Builds the space `name` from a JSON object of parameters (missing ones take defaults) and
/// validates it.
pub fn from_params(name: &str, params: serde_json::Value) -> Result<SpaceKind> {
    let Some(reg) = SPACES.iter().find(|r| r.name == name) else {
        return Err(ModelError::UnknownSpace { name: name.to_string(), expected: names().join(", ") });
    };
    let def = (reg.parse)(params).map_err(|e| ModelError::InvalidParam {
        space: name.to_string(),
        field: "params".into(),
        reason: e.to_string(),
    })?;
    let kind = SpaceKind::from_def(def);
    kind.validate()?;
    Ok(kind)
}
