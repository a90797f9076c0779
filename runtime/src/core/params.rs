//! Typed parameters that workloads, strategies and drivers declare, so one table
//! drives sweep validation, `experiment list` and error messages.

use std::collections::BTreeMap;
use std::fmt;

/// A parameter value as it appears in a sweep.
///
/// ```
/// use dagwire_runtime::ParamValue;
/// assert_eq!(ParamValue::Int(4).to_string(), "4");
/// assert_eq!(ParamValue::Str("eager".into()).to_string(), "eager");
/// ```
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum ParamValue {
    /// An integer.
    Int(i64),
    /// A real number.
    Float(f64),
    /// A name or other text.
    Str(String),
    /// A switch.
    Bool(bool),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Str(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// The values a parameter accepts.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamKind {
    /// An integer in `min..=max`.
    Int {
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// A real number in `min..=max`.
    Float {
        /// Smallest allowed.
        min: f64,
        /// Largest allowed.
        max: f64,
    },
    /// One of a fixed set of names.
    Choice(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
    /// Any non-empty text (a path, a preset name); the component checks it further.
    Text,
    /// An input file: one of the named presets (name, text), or a path to a file.
    /// `experiment run` resolves a relative path against the sweep file's folder,
    /// reads the file once, records its text and hash in the results directory's
    /// manifest and runs every point from that recorded copy.
    Input(&'static [(&'static str, &'static str)]),
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamKind::Int { min, max } if *max == i64::MAX => write!(f, "an integer >= {min}"),
            ParamKind::Int { min, max } => write!(f, "an integer in {min}..={max}"),
            ParamKind::Float { min, max } => write!(f, "a number in {min}..={max}"),
            ParamKind::Choice(names) => write!(f, "one of {}", names.join(", ")),
            ParamKind::Bool => write!(f, "true or false"),
            ParamKind::Text => write!(f, "a non-empty string"),
            ParamKind::Input([]) => write!(f, "the path of a file"),
            ParamKind::Input(presets) => {
                let names: Vec<&str> = presets.iter().map(|(n, _)| *n).collect();
                write!(f, "a preset ({}) or the path of a file", names.join(", "))
            }
        }
    }
}

/// One declared parameter.
///
/// ```
/// use dagwire_runtime::{ParamKind, ParamSpec, ParamValue};
/// let tile = ParamSpec::int("tile", 1, i64::MAX, 256, "tile edge in elements");
/// assert_eq!(tile.check(&ParamValue::Int(128)), Ok(ParamValue::Int(128)));
/// assert!(tile.check(&ParamValue::Int(0)).unwrap_err().contains(">= 1"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Name, without the owner's prefix (`tile`, not `cholesky.tile`).
    pub name: &'static str,
    /// Accepted values.
    pub kind: ParamKind,
    /// Value when a sweep does not set it.
    pub default: ParamValue,
    /// One line for `experiment list` and `--help`.
    pub help: &'static str,
}

impl ParamSpec {
    /// An integer parameter.
    pub fn int(name: &'static str, min: i64, max: i64, default: i64, help: &'static str) -> Self {
        ParamSpec { name, kind: ParamKind::Int { min, max }, default: ParamValue::Int(default), help }
    }

    /// A real-valued parameter.
    pub fn float(name: &'static str, min: f64, max: f64, default: f64, help: &'static str) -> Self {
        ParamSpec { name, kind: ParamKind::Float { min, max }, default: ParamValue::Float(default), help }
    }

    /// A parameter naming one of `choices`.
    pub fn choice(
        name: &'static str,
        choices: &'static [&'static str],
        default: &'static str,
        help: &'static str,
    ) -> Self {
        ParamSpec { name, kind: ParamKind::Choice(choices), default: ParamValue::Str(default.into()), help }
    }

    /// A free-text parameter (a path or a name checked by its component).
    pub fn text(name: &'static str, default: &'static str, help: &'static str) -> Self {
        ParamSpec { name, kind: ParamKind::Text, default: ParamValue::Str(default.into()), help }
    }

    /// An input file parameter: a name from `presets` or the path of a file (see
    /// [`ParamKind::Input`]).
    pub fn input(
        name: &'static str,
        presets: &'static [(&'static str, &'static str)],
        default: &'static str,
        help: &'static str,
    ) -> Self {
        ParamSpec { name, kind: ParamKind::Input(presets), default: ParamValue::Str(default.into()), help }
    }

    /// Whether `value` of an input parameter looks like the path of a file rather than
    /// a preset: it is no preset's name and has a path separator or a `.toml` or `.xml`
    /// ending (a bare name that is no preset stays a name, so its error can suggest one).
    /// An input without presets names a file whenever `value` is not empty.
    ///
    /// ```
    /// use dagwire_runtime::ParamSpec;
    /// let routing = ParamSpec::input("routing_file", &[], "", "a routing trace");
    /// assert!(routing.names_file("routing.txt") && !routing.names_file(""));
    /// let machine = ParamSpec::input("machine", &[("a", "")], "a", "a machine");
    /// assert!(!machine.names_file("a") && !machine.names_file("b") && machine.names_file("m/b"));
    /// ```
    pub fn names_file(&self, value: &str) -> bool {
        match self.kind {
            ParamKind::Input([]) => !value.is_empty(),
            ParamKind::Input(presets) => {
                !presets.iter().any(|(n, _)| *n == value)
                    && (value.contains('/')
                        || value.contains('\\')
                        || value.ends_with(".toml")
                        || value.ends_with(".xml"))
            }
            _ => false,
        }
    }

    /// A switch.
    pub fn boolean(name: &'static str, default: bool, help: &'static str) -> Self {
        ParamSpec { name, kind: ParamKind::Bool, default: ParamValue::Bool(default), help }
    }

    /// Checks a value, converting an integer to a real where a real is expected.
    /// The error says what is allowed.
    pub fn check(&self, value: &ParamValue) -> Result<ParamValue, String> {
        let bad = || Err(format!("got {value}, expected {}", self.kind));
        match (&self.kind, value) {
            (ParamKind::Int { min, max }, ParamValue::Int(v)) if v >= min && v <= max => Ok(value.clone()),
            (ParamKind::Float { min, max }, ParamValue::Float(v)) if v >= min && v <= max => Ok(value.clone()),
            (ParamKind::Float { min, max }, ParamValue::Int(v)) if *v as f64 >= *min && *v as f64 <= *max => {
                Ok(ParamValue::Float(*v as f64))
            }
            (ParamKind::Choice(names), ParamValue::Str(s)) if names.contains(&s.as_str()) => Ok(value.clone()),
            (ParamKind::Bool, ParamValue::Bool(_)) => Ok(value.clone()),
            (ParamKind::Text | ParamKind::Input(_), ParamValue::Str(s)) if !s.is_empty() => Ok(value.clone()),
            _ => bad(),
        }
    }
}

/// Checked values for one component (a workload, a strategy, a driver), keyed by
/// parameter name. Missing names fall back to the declared defaults.
///
/// ```
/// use dagwire_runtime::{ParamSpec, ParamValue, Params};
/// let specs = [ParamSpec::int("n", 1, i64::MAX, 1024, "matrix order")];
/// let p = Params::resolve(&specs, [("n".to_string(), ParamValue::Int(512))].into()).unwrap();
/// assert_eq!(p.int("n"), 512);
/// let d = Params::resolve(&specs, Default::default()).unwrap();
/// assert_eq!(d.int("n"), 1024);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(BTreeMap<String, ParamValue>);

/// A parameter that was refused: which one and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ParamError {
    /// Name of the parameter.
    pub key: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl ParamError {
    /// An error for `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ParamError { key: key.into(), reason: reason.into() }
    }
}

impl Params {
    /// Checks `given` against `specs` and fills in defaults. Unknown names are refused
    /// with the list of known ones.
    pub fn resolve(specs: &[ParamSpec], given: BTreeMap<String, ParamValue>) -> Result<Params, ParamError> {
        let mut out = BTreeMap::new();
        for (key, value) in given {
            let spec = specs.iter().find(|s| s.name == key).ok_or_else(|| {
                let known: Vec<_> = specs.iter().map(|s| s.name).collect();
                ParamError::new(&key, format!("unknown parameter; known: {}", known.join(", ")))
            })?;
            let value = spec.check(&value).map_err(|reason| ParamError::new(&key, reason))?;
            out.insert(key, value);
        }
        for spec in specs {
            out.entry(spec.name.to_string()).or_insert_with(|| spec.default.clone());
        }
        Ok(Params(out))
    }

    /// [`Params::resolve`] for values written inline, as tests and benchmarks do.
    ///
    /// ```
    /// use dagwire_runtime::{ParamSpec, ParamValue, Params};
    /// let specs = [ParamSpec::int("n", 1, i64::MAX, 1024, "matrix order")];
    /// assert_eq!(Params::from_pairs(&specs, &[("n", ParamValue::Int(64))]).unwrap().int("n"), 64);
    /// ```
    pub fn from_pairs(specs: &[ParamSpec], given: &[(&str, ParamValue)]) -> Result<Params, ParamError> {
        Params::resolve(specs, given.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    /// Replaces the value of `key` (a caller that pins an input file to the copy it
    /// recorded, for example); the value is not checked again.
    pub fn set(&mut self, key: &str, value: ParamValue) {
        self.0.insert(key.to_string(), value);
    }

    /// All values, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// A value by name.
    pub fn get(&self, key: &str) -> Option<&ParamValue> {
        self.0.get(key)
    }

    /// An integer parameter.
    ///
    /// # Panics
    /// If `key` was not declared as an integer (a bug in the component).
    pub fn int(&self, key: &str) -> i64 {
        match self.0.get(key) {
            Some(ParamValue::Int(v)) => *v,
            other => panic!("parameter {key} is not a declared integer: {other:?}"),
        }
    }

    /// A real parameter.
    ///
    /// # Panics
    /// If `key` was not declared as a real.
    pub fn float(&self, key: &str) -> f64 {
        match self.0.get(key) {
            Some(ParamValue::Float(v)) => *v,
            Some(ParamValue::Int(v)) => *v as f64,
            other => panic!("parameter {key} is not a declared number: {other:?}"),
        }
    }

    /// A name parameter.
    ///
    /// # Panics
    /// If `key` was not declared as a choice.
    pub fn str(&self, key: &str) -> &str {
        match self.0.get(key) {
            Some(ParamValue::Str(v)) => v,
            other => panic!("parameter {key} is not a declared name: {other:?}"),
        }
    }

    /// A switch.
    ///
    /// # Panics
    /// If `key` was not declared as a switch.
    pub fn bool(&self, key: &str) -> bool {
        match self.0.get(key) {
            Some(ParamValue::Bool(v)) => *v,
            other => panic!("parameter {key} is not a declared switch: {other:?}"),
        }
    }
}

/// The known name closest to `given`, if it is close enough to be a likely typo.
///
/// ```
/// use dagwire_runtime::params::did_you_mean;
/// assert_eq!(did_you_mean("eagr", ["eager", "rendezvous"]), Some("eager"));
/// assert_eq!(did_you_mean("xyz", ["eager", "rendezvous"]), None);
/// ```
pub fn did_you_mean<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (edit_distance(given, k), k))
        .filter(|&(d, k)| d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
