//! `reference`: any string through the reference parser. It must never panic, its errors are
//! one line, and a parsed location printed with `Display` parses back to the same location.

use stepsecret::reference::{Reference, Selector};

use crate::is_one_line;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
}

pub fn check(text: &str) {
    let reference = match text.parse::<Reference>() {
        Ok(r) => r,
        Err(e) => {
            let message = e.to_string();
            assert!(
                is_one_line(&message),
                "multi-line error for {text:?}: {message:?}"
            );
            return;
        }
    };
    assert_eq!(reference.raw, text);
    assert_eq!(reference.to_string(), text);

    // The location alone (what a backend fetches, and what messages print) round-trips.
    let printed = reference.location.to_string();
    let again = printed.parse::<Reference>().unwrap_or_else(|e| {
        panic!("{text:?}: its location prints as {printed:?}, which does not parse: {e}")
    });
    assert_eq!(
        again.location, reference.location,
        "{text:?}: its location prints as {printed:?}, which parses to another location"
    );
    assert_eq!(again.selector, Selector::Whole, "{text:?} -> {printed:?}");
    assert_eq!(again.backend(), reference.backend());
    assert_eq!(again.location.to_string(), printed, "printing is stable");
}
