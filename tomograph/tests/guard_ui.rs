//! A `SpanGuard` cannot leave its thread: sending one, or spawning a future that holds one
//! across `.await`, is a compile error (trybuild; expected messages in `ui-guard/`).

#[test]
fn a_guard_is_not_send() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui-guard/*.rs");
}
