//! The registry: every space pwsnas knows, in one list. Adding a space is its own module (a
//! parameter type implementing [`SpaceDef`] and [`SpaceParams`]) plus one line in [`SPACES`]; the
//! CLI, `space.json` and the errors that list valid names read them from here.
use std::sync::Arc;

use super::def::{SpaceDef, SpaceParams};
use super::SpaceKind;
use crate::darts::DartsParams;
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
pub const SPACES: &[Registration] = &[
    Registration::of::<Nb201Params>(),
    Registration::of::<MobileParams>(),
    Registration::of::<DartsParams>(),
];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_lists_every_space_under_its_own_name() {
        assert_eq!(names(), ["nb201", "mobile", "darts"]);
        for name in names() {
            let kind = SpaceKind::by_name(name).unwrap();
            assert_eq!(kind.name(), name);
            // The params round trip through the registry.
            assert_eq!(from_params(name, kind.params_json()).unwrap(), kind);
        }
    }

    #[test]
    fn unknown_names_and_bad_params_are_errors_that_say_what_is_valid() {
        let err = SpaceKind::by_name("darts2").unwrap_err().to_string();
        assert!(err.contains("'darts2'"), "{err}");
        for name in names() {
            assert!(err.contains(name), "{err} does not list {name}");
        }
        let err = from_params("nb201", serde_json::json!({ "width": 1.0 })).unwrap_err().to_string();
        assert!(err.contains("nb201") && err.contains("width"), "{err}");
        let err = from_params("mobile", serde_json::json!({ "width": -1.0 })).unwrap_err().to_string();
        assert!(err.contains("mobile") && err.contains("width"), "{err}");
    }
}
