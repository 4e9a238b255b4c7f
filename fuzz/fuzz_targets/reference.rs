#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stepsecret_fuzz::reference::run(data));
