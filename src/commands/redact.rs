//! `stepsecret redact`: the run's redactor as a stdin-to-stdout filter, for output produced
//! outside `stepsecret run` (a log file, another tool's output).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use secrecy::ExposeSecret;
use zeroize::{Zeroize, Zeroizing};

use super::warn;
use crate::cli::RedactArgs;
use crate::env::Env;
use crate::error::{Error, UsageError};
use crate::plan::Plan;
use crate::redact::{MIN_LEN, Redactor};
use crate::resolve::resolve;

pub(super) fn redact(args: RedactArgs, env: &Env) -> Result<u8, Error> {
    let plan = Plan::build(&args.spec, env)?;
    if plan.entries.is_empty() && args.env.is_empty() {
        return Err(UsageError::NothingToMask.into());
    }
    let vars = if plan.entries.is_empty() {
        Vec::new()
    } else {
        resolve(&plan, &|| None)?.into_vars(&plan)?.0
    };
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    plan.check_public(&names)?;
    let mut from_env: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
    for name in &args.env {
        match env.get_os(name) {
            Some(value) => from_env.push((
                name.clone(),
                Zeroizing::new(value.as_encoded_bytes().to_vec()),
            )),
            None => warn(format!(
                "--env {name}: the variable is not set; nothing to mask for it"
            )),
        }
    }
    // Templates are rendered (and dropped) only for what their filters derive from secrets,
    // such as the base64 of `user:password` in a docker config: masked as `run` masks it.
    let all: Vec<(&str, &[u8])> = vars
        .iter()
        .map(|v| (v.name.as_str(), v.value.expose_secret()))
        .collect();
    let rendered = plan.render(&all)?;
    let secrets = vars
        .iter()
        .filter(|v| !plan.is_public(&v.name))
        .map(|v| (v.name.as_str(), v.value.expose_secret()))
        .chain(plan.derived(&rendered))
        .chain(from_env.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
    let (redactor, too_short) = Redactor::new(secrets);
    for name in too_short {
        warn(format!(
            "{name} is shorter than {MIN_LEN} bytes and will not be masked"
        ));
    }

    // fd 1 unbuffered: each read is passed on at once, without Stdout's line buffering.
    let stdout = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::os("cannot use stdout", e))?;
    let mut writer = redactor.writer(File::from(stdout));
    let mut stdin = io::stdin().lock();
    // A bigger pipe and buffer mean fewer wake-ups per gigabyte (fails harmlessly on a file).
    let _ = rustix::pipe::fcntl_setpipe_size(io::stdin(), 1 << 20);
    let mut buf = vec![0u8; 1 << 18];
    let result = loop {
        match stdin.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = writer.write_all(&buf[..n]) {
                    break Err(e);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    buf.zeroize();
    match result.and_then(|()| writer.finish().map(drop)) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::io("cannot copy stdin to stdout", e)),
    }
}
