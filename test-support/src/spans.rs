//! Reading spans in assertions.

use tomograph::Span;

/// The value of tag `key` on `span` as text (`None` when the span has no such tag).
pub fn tag_text(span: &Span, key: &str) -> Option<String> {
    span.tag_value(key).map(ToString::to_string)
}
