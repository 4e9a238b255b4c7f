//! `stepsecret keygen` and `stepsecret seal`: age identities and encrypted secret files for
//! `age://` references.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::cli::{KeygenArgs, SealArgs};
use crate::dotenv;
use crate::error::{Error, UsageError};

pub(super) fn keygen(args: KeygenArgs) -> Result<u8, Error> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = Zeroizing::new(format!(
        "# created: {}\n# public key: {recipient}\n{}\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        identity.to_string().expose_secret()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.output)
        .map_err(|e| {
            Error::io(
                format!(
                    "cannot create {} (it is never overwritten)",
                    args.output.display()
                ),
                e,
            )
        })?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("cannot write {}", args.output.display()), e))?;
    eprintln!(
        "stepsecret: wrote identity to {} (mode 0600)",
        args.output.display()
    );
    println!("{recipient}");
    Ok(0)
}

pub(super) fn seal(args: SealArgs) -> Result<u8, Error> {
    let recipients = recipients(&args)?;
    let stdin = args.input == Path::new("-");
    let plaintext = Zeroizing::new(if stdin {
        let mut buf = Vec::new();
        io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("cannot read stdin", e))?;
        buf
    } else {
        std::fs::read(&args.input)
            .map_err(|e| Error::io(format!("cannot read {}", args.input.display()), e))?
    });
    let shown = if stdin {
        "stdin".to_string()
    } else {
        args.input.display().to_string()
    };
    validate(&plaintext, &shown)?;

    let output = match &args.output {
        Some(path) => path.clone(),
        None if stdin => return Err(UsageError::SealStdinNeedsOutput.into()),
        None => {
            let mut name = args.input.clone().into_os_string();
            name.push(".age");
            PathBuf::from(name)
        }
    };
    let recipient_refs = recipients.iter().map(|r| r as &dyn age::Recipient);
    let encryptor =
        age::Encryptor::with_recipients(recipient_refs).map_err(|e| UsageError::CannotEncrypt {
            reason: e.to_string(),
        })?;
    let mut ciphertext = Vec::with_capacity(plaintext.len() + 512);
    let format = if args.armor {
        age::armor::Format::AsciiArmor
    } else {
        age::armor::Format::Binary
    };
    let write = || -> io::Result<()> {
        let armor = age::armor::ArmoredWriter::wrap_output(&mut ciphertext, format)?;
        let mut writer = encryptor.wrap_output(armor)?;
        writer.write_all(&plaintext)?;
        writer.finish()?.finish()?;
        Ok(())
    };
    write().map_err(|e| Error::io("cannot encrypt", e))?;

    let mut options = OpenOptions::new();
    options.write(true).mode(0o644);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options
        .open(&output)
        .and_then(|mut f| f.write_all(&ciphertext))
        .map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::AlreadyExists {
                " (use --force to replace it)"
            } else {
                ""
            };
            Error::io(format!("cannot write {}{hint}", output.display()), e)
        })?;
    eprintln!(
        "stepsecret: sealed {shown} to {} recipient(s) in {}",
        recipients.len(),
        output.display()
    );
    Ok(0)
}

/// Only files an `age://` reference can read are sealed: a JSON object or dotenv. `input` is
/// the file's name (or `stdin`) for the message, which never shows its content.
fn validate(plaintext: &[u8], input: &str) -> Result<(), UsageError> {
    let input = input.to_string();
    let first = plaintext.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        match serde_json::from_slice::<serde_json::Value>(plaintext) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(_) => Err(UsageError::SealJsonNotObject { input }),
            Err(e) => Err(UsageError::SealInvalidJson {
                input,
                line: e.line(),
                column: e.column(),
            }),
        }
    } else {
        dotenv::parse(plaintext)
            .map(drop)
            .map_err(|reason| UsageError::SealInvalidDotenv { input, reason })
    }
}

fn recipients(args: &SealArgs) -> Result<Vec<age::x25519::Recipient>, Error> {
    let mut texts: Vec<(String, String)> = args
        .recipients
        .iter()
        .map(|r| (r.clone(), "-r".to_string()))
        .collect();
    for path in &args.recipients_file {
        let content = std::fs::read_to_string(path).map_err(|source| {
            UsageError::RecipientsFileUnreadable {
                path: path.clone(),
                source,
            }
        })?;
        for (i, line) in content.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                texts.push((line.to_string(), format!("{}:{}", path.display(), i + 1)));
            }
        }
    }
    if texts.is_empty() {
        return Err(UsageError::NoRecipients.into());
    }
    texts
        .iter()
        .map(|(text, from)| {
            age::x25519::Recipient::from_str(text).map_err(|_| {
                Error::from(UsageError::BadRecipient {
                    from: from.clone(),
                    text: text.clone(),
                })
            })
        })
        .collect()
}
