//! `#[traced]` misuse gives a clear compile error (trybuild; expected messages in `ui/`).
#![cfg(feature = "macros")]

#[test]
fn misuse_is_a_clear_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
