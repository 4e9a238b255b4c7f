//! The validated plan (stage two): every variable named once, with a valid name and a parsed
//! reference, before anything is fetched.
//!
//! Entries come from the spec's `[env]`, `[files]`, `[values]` and `[expand]` tables, from `-s` /
//! `--file` flags, and from STEPSECRET_SECRETS; templates from `[templates]`. Mistakes in flags
//! are usage errors (exit 64); mistakes in the spec or STEPSECRET_SECRETS are spec errors
//! (exit 78). Both name where the entry came from. Templates are read and checked here too, and
//! fixed file paths resolved, so that none of these mistakes is found after fetching.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::cli::SpecArgs;
use crate::env::Env;
pub use crate::error::{EntryError, Origin};
use crate::error::{Error, SpecError};
pub use crate::reference::is_env_name;
use crate::reference::{Backend, Location, Reference, Selector};
use crate::spec::{AwsSettings, FileSpec, Spec, TemplateSpec, VaultSettings};
use crate::template::{Rendered, Template};

/// The spec file used when --spec and STEPSECRET_SPEC are both absent, if it exists.
pub const DEFAULT_SPEC: &str = "stepsecret.toml";

/// Where the command receives a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An environment variable holding the value.
    Env,
    /// A 0600 file holding the value; the variable holds its path.
    File,
    /// Seen only by templates and the redactor (`[values]`): never in the command's
    /// environment.
    Value,
}

impl Target {
    /// `env` or `file`, for tables and the audit record.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Env => "env",
            Target::File => "file",
            Target::Value => "value",
        }
    }
}

/// The public names of the spec's `[mask] public` and of `--public` / STEPSECRET_PUBLIC, each
/// with where it was listed. A name that no entry sets, and no expansion could produce, is a
/// spec error now; one an expansion might produce is checked once it ran
/// ([`Plan::check_public`]).
fn public_names(
    spec: Option<&Spec>,
    args: &SpecArgs,
    entries: &[Entry],
) -> Result<BTreeMap<String, String>, Error> {
    let mut public = BTreeMap::new();
    if let Some(spec) = spec {
        for name in &spec.file.mask.public {
            let from = format!(
                "{}:{}: [mask] public",
                spec.path.display(),
                spec.line(name.span().start)
            );
            public.insert(name.get_ref().trim().to_string(), from);
        }
    }
    for name in &args.public {
        let name = name.trim();
        if !name.is_empty() {
            public
                .entry(name.to_string())
                .or_insert_with(|| "--public (or STEPSECRET_PUBLIC)".to_string());
        }
    }
    for (name, from) in &public {
        if !may_set(entries, name) {
            return Err(SpecError::PublicUnknown {
                name: name.clone(),
                from: from.clone(),
            }
            .into());
        }
    }
    Ok(public)
}

/// Whether one of `entries` sets `name`, or (for an expansion, whose keys are known only once
/// it ran) may set it.
fn may_set(entries: &[Entry], name: &str) -> bool {
    entries.iter().any(|e| match &e.expand {
        None => e.name == name,
        Some(prefix) => name.starts_with(prefix.as_str()),
    })
}

/// One variable (or, for an expansion, one family of variables) to resolve.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The variable name, or for an expansion the name the user wrote.
    pub name: String,
    /// Where the value goes.
    pub target: Target,
    /// Where the value comes from.
    pub reference: Reference,
    /// For an expansion: the prefix every top-level key is appended to.
    pub expand: Option<String>,
    /// For a file at a path the user chose: that path, absolute.
    pub path: Option<PathBuf>,
    /// Where the user wrote the entry.
    pub origin: Origin,
}

/// A `[templates]` entry: a checked template, rendered once the secrets are known.
#[derive(Debug, Clone)]
pub struct TemplateEntry {
    /// The variable that holds the rendered file's path.
    pub name: String,
    /// The template, read and checked.
    pub template: Template,
    /// Where the file goes, absolute; `None` for the private directory.
    pub path: Option<PathBuf>,
    /// Where the user wrote the entry.
    pub origin: Origin,
}

/// Everything a run needs to know, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every variable to resolve, in the order written.
    pub entries: Vec<Entry>,
    /// Files to render from the resolved variables.
    pub templates: Vec<TemplateEntry>,
    /// The spec's `[vault]` table.
    pub vault: VaultSettings,
    /// The spec's `[aws]` table.
    pub aws: AwsSettings,
    /// The folder relative `age://` paths start from: the spec's, else the working directory.
    pub base_dir: PathBuf,
    /// The spec file, when there is one.
    pub spec_path: Option<PathBuf>,
    /// The overall fetch deadline, retries included.
    pub timeout: Duration,
    /// `[policy] max_age` from the spec.
    pub max_age: Option<Duration>,
    /// Variables whose values are not secret (`[mask] public`, `--public`): set as usual,
    /// never masked, left out of the audit HMACs. Each with where it was listed.
    pub public: BTreeMap<String, String>,
    /// The environment the run started with: the sources complete their settings from it.
    pub env: Env,
}

impl Plan {
    /// Reads the spec (if any) and validates every entry. Touches no network.
    pub fn build(args: &SpecArgs, env: &Env) -> Result<Plan, Error> {
        let spec = match &args.spec {
            Some(path) => Some(Spec::load(path)?),
            None if Path::new(DEFAULT_SPEC).is_file() => Some(Spec::load(Path::new(DEFAULT_SPEC))?),
            None => None,
        };
        let mut raw: Vec<RawEntry> = Vec::new();
        if let Some(spec) = &spec {
            let files = spec.file.files.iter().map(|(name, file)| {
                let FileSpec { reference, path } = file.get_ref();
                (name, reference, path.as_ref())
            });
            let f = &spec.file;
            raw.extend(spec_entries(spec, plain(&f.env), Target::Env, false));
            raw.extend(spec_entries(spec, files, Target::File, false));
            raw.extend(spec_entries(spec, plain(&f.values), Target::Value, false));
            raw.extend(spec_entries(spec, plain(&f.expand), Target::Env, true));
        }
        for (flags, target, origin) in [
            (&args.secret, Target::Env, Origin::SecretFlag),
            (&args.file, Target::File, Origin::FileFlag),
        ] {
            for flag in flags {
                raw.push(split_assignment(flag, target, origin.clone())?);
            }
        }
        if let Some(list) = &args.secrets {
            for (i, line) in list.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let origin = Origin::SecretsList { line: i + 1 };
                raw.push(split_assignment(line, Target::Env, origin)?);
            }
        }

        let places = Places::new(env);
        let mut entries: Vec<Entry> = Vec::with_capacity(raw.len());
        let mut seen = Names::default();
        for r in raw {
            let entry = r.validate(&places)?;
            seen.add(entry.expand.as_deref(), &entry.name, &entry.origin)?;
            entries.push(entry);
        }
        let templates = match &spec {
            Some(spec) => templates(spec, &places, &mut seen, &entries)?,
            None => Vec::new(),
        };
        check_distinct(&entries, &templates)?;

        let base_dir = spec
            .as_ref()
            .map_or_else(|| PathBuf::from("."), Spec::base_dir);
        let max_age =
            match spec.as_ref().and_then(|s| {
                s.file
                    .policy
                    .max_age
                    .as_ref()
                    .map(|m| (m, s.path.clone(), s.line(m.span().start)))
            }) {
                None => None,
                Some((text, path, line)) => Some(
                    crate::cli::parse_duration(text.get_ref())
                        .map_err(|reason| SpecError::MaxAge { path, line, reason })?,
                ),
            };
        let public = public_names(spec.as_ref(), args, &entries)?;
        let (vault, aws) = spec
            .as_ref()
            .map(|s| (s.file.vault.clone(), s.file.aws.clone()))
            .unwrap_or_default();
        Ok(Plan {
            entries,
            templates,
            vault,
            aws,
            base_dir,
            spec_path: spec.map(|s| s.path),
            timeout: args.timeout,
            max_age,
            public,
            env: env.clone(),
        })
    }

    /// Whether `name`'s value is public (not masked, no HMAC).
    pub fn is_public(&self, name: &str) -> bool {
        self.public.contains_key(name)
    }

    /// Fails for a public name that is none of the run's variables once expansions are
    /// known (`names`: every variable resolved). Names no expansion could produce were already
    /// checked by [`Plan::build`].
    pub fn check_public(&self, names: &[&str]) -> Result<(), Error> {
        for (name, from) in &self.public {
            if !names.contains(&name.as_str()) {
                return Err(SpecError::PublicUnknown {
                    name: name.clone(),
                    from: from.clone(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Renders every template with `vars` (every variable of the run, by name). Filter
    /// outputs made from a value that is not public come back as derived secrets, for the
    /// redactor.
    pub fn render(&self, vars: &[(&str, &[u8])]) -> Result<Vec<Rendered>, Error> {
        if self.templates.is_empty() {
            return Ok(Vec::new());
        }
        let masked: Vec<&[u8]> = vars
            .iter()
            .filter(|(name, _)| !self.is_public(name))
            .map(|(_, value)| *value)
            .collect();
        self.templates
            .iter()
            .map(|t| Ok(t.template.render(vars, &masked)?))
            .collect()
    }

    /// The values templates derived from secrets, each with its template's name.
    pub fn derived<'a>(
        &'a self,
        rendered: &'a [Rendered],
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.templates.iter().zip(rendered).flat_map(|(t, r)| {
            r.derived
                .iter()
                .map(move |value| (t.name.as_str(), value.as_slice()))
        })
    }

    /// The files at paths the spec chose, with the variable each belongs to.
    pub fn chosen_paths(&self) -> impl Iterator<Item = (&str, &Path)> {
        chosen_paths(&self.entries, &self.templates).map(|(name, path, _)| (name, path))
    }

    /// The backends this plan uses, each once.
    pub fn backends(&self) -> Vec<Backend> {
        let mut backends: Vec<Backend> =
            self.entries.iter().map(|e| e.reference.backend()).collect();
        backends.sort();
        backends.dedup();
        backends
    }
}

/// An entry before validation: text as written, and where.
struct RawEntry {
    name: String,
    reference: String,
    target: Target,
    expand_table: bool,
    /// `path = "..."`, as written.
    path: Option<String>,
    origin: Origin,
}

/// The raw entries of one spec table: (name, reference, path) each.
fn spec_entries<'a>(
    spec: &'a Spec,
    table: impl Iterator<Item = (&'a Spanned<String>, &'a String, Option<&'a String>)> + 'a,
    target: Target,
    expand_table: bool,
) -> impl Iterator<Item = RawEntry> + 'a {
    table.map(move |(name, reference, path)| RawEntry {
        name: name.get_ref().clone(),
        reference: reference.clone(),
        target,
        expand_table,
        path: path.cloned(),
        origin: spec_origin(spec, name),
    })
}

/// A `NAME = "REF"` table as (name, reference, no path).
fn plain(
    table: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> impl Iterator<Item = (&Spanned<String>, &String, Option<&String>)> {
    table
        .iter()
        .map(|(name, reference)| (name, reference.get_ref(), None))
}

fn spec_origin(spec: &Spec, name: &Spanned<String>) -> Origin {
    Origin::Spec {
        path: spec.path.clone(),
        line: spec.line(name.span().start),
    }
}

/// Every name defined so far (variables, expansion prefixes, templates), with where.
#[derive(Default)]
struct Names(BTreeMap<String, Origin>);

impl Names {
    /// Refuses a name (or expansion prefix) defined before.
    fn add(&mut self, expand: Option<&str>, name: &str, origin: &Origin) -> Result<(), Error> {
        let key = expand.map_or_else(|| name.to_string(), |prefix| format!("[expand] {prefix}"));
        if let Some(first) = self.0.get(&key) {
            return Err(origin.error(EntryError::Duplicate {
                name: name.to_string(),
                first: first.clone(),
            }));
        }
        self.0.insert(key, origin.clone());
        Ok(())
    }
}

/// Reads and checks the spec's `[templates]`: each template parses, and reads only variables
/// the plan resolves (or that one of its expansions may produce, which rendering checks).
fn templates(
    spec: &Spec,
    places: &Places,
    seen: &mut Names,
    entries: &[Entry],
) -> Result<Vec<TemplateEntry>, Error> {
    let mut templates = Vec::new();
    for (name, entry) in &spec.file.templates {
        let origin = spec_origin(spec, name);
        let name = name.get_ref().clone();
        check_name(&name, false, &origin)?;
        seen.add(None, &name, &origin)?;
        let TemplateSpec { template, path } = entry.get_ref();
        let file = template_file(spec, template);
        let template = Template::load(&file)
            .map_err(|e| {
                origin.error(EntryError::TemplateUnreadable {
                    name: name.clone(),
                    path: file.clone(),
                    reason: crate::error::plain_io_error(&e),
                })
            })?
            .check()?;
        for (variable, line) in template.variables() {
            if !may_set(entries, variable) {
                let message = format!(
                    "unknown variable `{variable}`: a template sees only the variables the spec resolves ([env], [files], [values], [expand])"
                );
                return Err(template.at(Some(*line), message).into());
            }
        }
        let path = match path {
            Some(written) => Some(places.resolve(&name, written, &origin)?),
            None => None,
        };
        templates.push(TemplateEntry {
            name,
            template,
            path,
            origin,
        });
    }
    Ok(templates)
}

/// Where a template file is: relative to the spec's folder (as `age://` files are) when it
/// is there, else to the working directory (a spec in `ci/` naming `ci/npmrc.tpl` the way
/// the repository's root sees it).
fn template_file(spec: &Spec, written: &str) -> PathBuf {
    let beside_spec = match spec.base_dir() {
        dir if dir == Path::new(".") => PathBuf::from(written),
        dir => dir.join(written),
    };
    // (An absolute `written` is the same path either way.)
    if !beside_spec.exists() && Path::new(written).exists() {
        PathBuf::from(written)
    } else {
        beside_spec
    }
}

/// Resolves `path = "..."`: relative to the command's working directory, `~/` in HOME.
struct Places {
    cwd: Option<PathBuf>,
    home: Option<PathBuf>,
}

impl Places {
    fn new(env: &Env) -> Places {
        Places {
            cwd: Env::current_dir().ok(),
            home: env.home(),
        }
    }

    /// The absolute, lexically normal path `written` names.
    fn resolve(&self, name: &str, written: &str, origin: &Origin) -> Result<PathBuf, Error> {
        let bad = |reason| {
            origin.error(EntryError::BadPath {
                name: name.to_string(),
                path: written.to_string(),
                reason,
            })
        };
        let last = written.rsplit('/').next().unwrap_or_default();
        if written.is_empty() {
            return Err(bad("is empty"));
        }
        if matches!(last, "" | "." | ".." | "~") {
            return Err(bad("names a folder: give the file's name"));
        }
        let joined = if let Some(rest) = written.strip_prefix("~/") {
            let home = self.home.as_ref();
            home.ok_or_else(|| bad("starts with ~/ but HOME is not set"))?
                .join(rest)
        } else if written.starts_with('~') {
            return Err(bad(
                "uses ~user, which is not supported: write ~/... or a full path",
            ));
        } else {
            let cwd = self.cwd.as_ref();
            cwd.ok_or_else(|| bad("is relative, and the working directory is unknown"))?
                .join(written)
        };
        let normal = normalize(&joined);
        if normal.file_name().is_none() {
            return Err(bad("names a folder: give the file's name"));
        }
        Ok(normal)
    }
}

/// The files at paths the spec chose (`[files]`, then `[templates]`): variable, path, origin.
fn chosen_paths<'a>(
    entries: &'a [Entry],
    templates: &'a [TemplateEntry],
) -> impl Iterator<Item = (&'a str, &'a Path, &'a Origin)> {
    let files = entries
        .iter()
        .filter_map(|e| Some((e.name.as_str(), e.path.as_deref()?, &e.origin)));
    let templates = templates
        .iter()
        .filter_map(|t| Some((t.name.as_str(), t.path.as_deref()?, &t.origin)));
    files.chain(templates)
}

/// Refuses two entries writing the same file.
fn check_distinct(entries: &[Entry], templates: &[TemplateEntry]) -> Result<(), Error> {
    let mut seen: BTreeMap<&Path, &Origin> = BTreeMap::new();
    for (name, path, origin) in chosen_paths(entries, templates) {
        if let Some(first) = seen.insert(path, origin) {
            return Err(origin.error(EntryError::SamePath {
                name: name.to_string(),
                path: path.to_path_buf(),
                first: first.clone(),
            }));
        }
    }
    Ok(())
}

/// `path` without `.` and with each `..` applied, without touching the file system (the
/// folders may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Refuses a name that is not a variable name, or one stepsecret reserves.
fn check_name(name: &str, expand_table: bool, origin: &Origin) -> Result<(), Error> {
    let name_ok = if expand_table {
        name.is_empty() || is_env_name(name)
    } else {
        is_env_name(name)
    };
    if !name_ok {
        return Err(origin.error(EntryError::InvalidName {
            name: name.to_string(),
        }));
    }
    if name.starts_with("STEPSECRET_") {
        return Err(origin.error(EntryError::Reserved {
            name: name.to_string(),
        }));
    }
    Ok(())
}

fn split_assignment(text: &str, target: Target, origin: Origin) -> Result<RawEntry, Error> {
    match text.split_once('=') {
        Some((name, reference)) => Ok(RawEntry {
            name: name.trim().to_string(),
            reference: reference.trim().to_string(),
            target,
            expand_table: false,
            path: None,
            origin,
        }),
        None => Err(origin.error(EntryError::NotAssignment {
            text: text.to_string(),
        })),
    }
}

impl RawEntry {
    fn validate(self, places: &Places) -> Result<Entry, Error> {
        let origin = &self.origin;
        check_name(&self.name, self.expand_table, origin)?;
        let reference: Reference = self.reference.parse().map_err(|error| {
            origin.error(EntryError::Reference {
                name: self.name.clone(),
                error,
            })
        })?;
        let expand = if self.expand_table {
            Some(self.name.clone())
        } else if reference.selector == Selector::All {
            if self.target == Target::File {
                return Err(origin.error(EntryError::ExpandIntoFile { name: self.name }));
            }
            Some(format!("{}_", self.name))
        } else {
            None
        };
        let whole = matches!(reference.selector, Selector::Whole | Selector::All);
        if let Location::Ssm(ssm) = &reference.location
            && ssm.path
            && (expand.is_none() || !whole)
        {
            return Err(origin.error(EntryError::PathNotExpanded {
                name: self.name,
                raw: reference.raw,
            }));
        }
        let path = match &self.path {
            Some(written) => Some(places.resolve(&self.name, written, origin)?),
            None => None,
        };
        Ok(Entry {
            name: self.name,
            target: self.target,
            reference,
            expand,
            path,
            origin: self.origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::UsageError;
    use crate::reference::ReferenceError;

    fn args(secrets: &[&str], files: &[&str], list: Option<&str>) -> SpecArgs {
        SpecArgs {
            spec: None,
            secret: secrets.iter().map(|s| s.to_string()).collect(),
            file: files.iter().map(|s| s.to_string()).collect(),
            secrets: list.map(str::to_string),
            public: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }

    fn build_err(a: SpecArgs) -> (String, u8) {
        let e = Plan::build(&a, &Env::default()).unwrap_err();
        (e.to_string(), e.exit_code())
    }

    #[test]
    fn flags_and_list_combine() {
        let plan = Plan::build(
            &args(
                &["A=age://s.age#a"],
                &["B=age://s.age#b"],
                Some("# comment\n\nC=age://s.age#c\r\n"),
            ),
            &Env::default(),
        )
        .unwrap();
        let names: Vec<_> = plan
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.target))
            .collect();
        assert_eq!(
            names,
            [("A", Target::Env), ("B", Target::File), ("C", Target::Env)]
        );
        assert_eq!(plan.backends(), [Backend::Age]);
    }

    /// The entry error of a flag (a usage error) or of anything else (a spec error).
    fn entry_err(a: SpecArgs) -> (Origin, EntryError, u8) {
        let e = Plan::build(&a, &Env::default()).unwrap_err();
        let code = e.exit_code();
        match e {
            Error::Usage(UsageError::Entry { origin, error })
            | Error::Spec(SpecError::Entry { origin, error }) => (origin, *error, code),
            other => panic!("not an entry error: {other:?}"),
        }
    }

    #[test]
    fn duplicates_are_refused_naming_both_places() {
        let (msg, code) = build_err(args(&["A=age://s.age#a"], &[], Some("A=age://s.age#b")));
        assert_eq!(code, 78);
        assert_eq!(
            msg,
            "STEPSECRET_SECRETS line 1: A is already defined at -s; each name may appear once"
        );
    }

    #[test]
    fn flag_mistakes_are_usage_errors_and_list_mistakes_spec_errors() {
        assert_eq!(
            entry_err(args(&["A"], &[], None)),
            (
                Origin::SecretFlag,
                EntryError::NotAssignment { text: "A".into() },
                64
            )
        );
        assert_eq!(
            build_err(args(&[], &["A"], None)).0,
            "--file: `A` is not NAME=REF (e.g. DB_PASSWORD=vault://secret/prod/db#password)"
        );
        assert_eq!(
            build_err(args(&["1A=age://x#k"], &[], None)),
            (
                "-s: `1A` is not a valid variable name (letters, digits and _, not starting with a digit)"
                    .into(),
                64
            )
        );
        let (origin, error, code) = entry_err(args(&["A=nope"], &[], None));
        assert_eq!((origin, code), (Origin::SecretFlag, 64));
        assert!(matches!(
            error,
            EntryError::Reference { name, error: ReferenceError::NotAReference { .. } } if name == "A"
        ));
        let (origin, error, code) = entry_err(args(&[], &[], Some("A=age://x#k\nB=s3://x")));
        assert_eq!((origin, code), (Origin::SecretsList { line: 2 }, 78));
        assert!(matches!(
            error,
            EntryError::Reference { name, error: ReferenceError::UnknownScheme { scheme, .. } }
                if name == "B" && scheme == "s3"
        ));
        assert_eq!(
            build_err(args(&[], &[], Some("B=s3://x"))).0,
            "STEPSECRET_SECRETS line 1: B: unknown scheme `s3://` in `s3://x`: use vault://, aws-sm://, aws-ssm://, age:// or env://"
        );
        assert_eq!(
            build_err(args(&["STEPSECRET_X=age://x#k"], &[], None)).0,
            "-s: STEPSECRET_X is reserved: names starting with STEPSECRET_ configure stepsecret itself"
        );
    }

    #[test]
    fn an_ssm_path_is_only_expanded() {
        let plan = Plan::build(
            &args(&["APP=aws-ssm:///prod/app/*#*"], &[], None),
            &Env::default(),
        )
        .unwrap();
        assert_eq!(plan.entries[0].expand.as_deref(), Some("APP_"));
        let (_, error, code) = entry_err(args(&["APP=aws-ssm:///prod/app/*"], &[], None));
        assert_eq!(code, 64);
        assert!(matches!(error, EntryError::PathNotExpanded { name, .. } if name == "APP"));
        assert!(matches!(
            entry_err(args(&["APP=aws-ssm:///prod/app/*#key"], &[], None)).1,
            EntryError::PathNotExpanded { .. }
        ));
    }

    #[test]
    fn expansion_prefixes() {
        let plan = Plan::build(&args(&["DB=age://s.age#*"], &[], None), &Env::default()).unwrap();
        assert_eq!(plan.entries[0].expand.as_deref(), Some("DB_"));
        assert_eq!(
            build_err(args(&[], &["DB=age://s.age#*"], None)).0,
            "--file: DB: #* expands into variables and cannot be written to one file; name a key instead"
        );
    }

    #[test]
    fn a_bad_max_age_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stepsecret.toml");
        std::fs::write(&path, "[policy]\nmax_age = \"soon\"\n").unwrap();
        let mut a = args(&[], &[], None);
        a.spec = Some(path.clone());
        let e = Plan::build(&a, &Env::default()).unwrap_err();
        assert!(
            matches!(&e, Error::Spec(SpecError::MaxAge { line: 2, .. })),
            "{e:?}"
        );
        assert_eq!(e.exit_code(), 78);
    }

    #[test]
    fn spec_entries_carry_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stepsecret.toml");
        std::fs::write(
            &path,
            "[env]\nA = \"age://a.age#k\"\n\n[files]\nB = \"vault:/x\"\n",
        )
        .unwrap();
        let mut a = args(&[], &[], None);
        a.spec = Some(path.clone());
        let (origin, error, code) = entry_err(a);
        assert_eq!(code, 78);
        assert_eq!(origin, Origin::Spec { path, line: 5 });
        assert!(matches!(
            error,
            EntryError::Reference { name, error: ReferenceError::NotAReference { raw } }
                if name == "B" && raw == "vault:/x"
        ));
    }

    #[test]
    fn an_invalid_name_with_a_line_break_stays_one_line() {
        for name in ["A\rB", "A\u{2028}B", "A\nB"] {
            let (msg, _) = build_err(args(&[name], &[], None));
            assert!(!msg.chars().any(|c| c.is_control()), "{msg:?}");
            // Not a name and not a reference: it may be a value, so it is not shown at all.
            assert!(msg.starts_with("-s: the text given (not shown"), "{msg:?}");
            let (msg, code) = build_err(args(&[&format!("{name}=age://s.age#k")], &[], None));
            assert_eq!(code, 64);
            assert!(
                !msg.chars().any(|c| c.is_control() || c == '\u{2028}'),
                "{msg:?}"
            );
        }
    }

    #[test]
    fn chosen_paths_resolve_against_the_working_directory_and_home() {
        let places = Places {
            cwd: Some(PathBuf::from("/build/app")),
            home: Some(PathBuf::from("/home/ci")),
        };
        let origin = Origin::FileFlag;
        let ok = |written| places.resolve("F", written, &origin).unwrap();
        assert_eq!(ok(".npmrc"), Path::new("/build/app/.npmrc"));
        assert_eq!(
            ok("./a/../.docker/config.json"),
            Path::new("/build/app/.docker/config.json")
        );
        assert_eq!(ok("~/.npmrc"), Path::new("/home/ci/.npmrc"));
        assert_eq!(ok("/etc/x.conf"), Path::new("/etc/x.conf"));
        for folder in ["", "out/", ".", "a/..", "~", "/"] {
            let e = places.resolve("F", folder, &origin).unwrap_err();
            assert!(
                matches!(&e, Error::Usage(UsageError::Entry { error, .. }) if matches!(**error, EntryError::BadPath { .. })),
                "{folder:?}: {e:?}"
            );
        }
        let e = places.resolve("F", "~root/x", &origin).unwrap_err();
        assert!(e.to_string().contains("~user"), "{e}");
        let homeless = Places {
            cwd: None,
            home: None,
        };
        assert!(
            homeless
                .resolve("F", "~/x", &origin)
                .unwrap_err()
                .to_string()
                .contains("HOME")
        );
    }

    #[test]
    fn values_are_entries_that_only_templates_see() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stepsecret.toml");
        std::fs::write(
            &path,
            "[values]\nTOKEN = \"age://a.age#k\"\n[env]\nTOKEN = \"age://a.age#j\"\n",
        )
        .unwrap();
        let mut a = args(&[], &[], None);
        a.spec = Some(path);
        let (_, error, code) = entry_err(a.clone());
        assert_eq!(code, 78);
        assert!(matches!(error, EntryError::Duplicate { name, .. } if name == "TOKEN"));
        std::fs::write(
            a.spec.as_ref().unwrap(),
            "[values]\nTOKEN = \"age://a.age#k\"\n",
        )
        .unwrap();
        let plan = Plan::build(&a, &Env::default()).unwrap();
        assert_eq!(plan.entries[0].target, Target::Value);
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("_A1"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name("9A"));
    }
}
