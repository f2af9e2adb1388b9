//! Parsing `#[traced(...)]`'s arguments.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

const USAGE: &str = "expected `#[traced]`, `#[traced(\"service\", \"span name\")]` \
                     or `#[traced(name = \"...\", service = \"...\")]`";

/// The arguments: both optional. Without `service`, the span belongs to its parent's service
/// (or the tracer's); without `name`, it is named after the function.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) service: Option<LitStr>,
    pub(crate) name: Option<LitStr>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(Args::default());
        }
        if input.peek(LitStr) {
            return parse_positional(input);
        }
        let mut args = Args::default();
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated(input)?;
        for meta in metas {
            let Meta::NameValue(nv) = &meta else {
                return Err(syn::Error::new_spanned(meta, USAGE));
            };
            let slot = if nv.path.is_ident("name") {
                &mut args.name
            } else if nv.path.is_ident("service") {
                &mut args.service
            } else {
                return Err(syn::Error::new_spanned(
                    &nv.path,
                    "unknown #[traced] argument; expected `name` or `service`",
                ));
            };
            let Expr::Lit(ExprLit {
                lit: Lit::Str(value),
                ..
            }) = &nv.value
            else {
                return Err(syn::Error::new_spanned(
                    &nv.value,
                    "expected a string literal",
                ));
            };
            if slot.is_some() {
                return Err(syn::Error::new_spanned(
                    &nv.path,
                    "duplicate #[traced] argument",
                ));
            }
            *slot = Some(non_empty(value)?);
        }
        Ok(args)
    }
}

/// `"service", "name"`, the seed's decorator arguments.
fn parse_positional(input: ParseStream<'_>) -> syn::Result<Args> {
    let values = Punctuated::<Lit, Token![,]>::parse_terminated(input)?;
    let mut strings = Vec::new();
    for lit in &values {
        match lit {
            Lit::Str(s) => strings.push(non_empty(s)?),
            other => return Err(syn::Error::new_spanned(other, "expected a string literal")),
        }
    }
    match <[LitStr; 2]>::try_from(strings) {
        Ok([service, name]) => Ok(Args {
            service: Some(service),
            name: Some(name),
        }),
        Err(_) => Err(syn::Error::new_spanned(
            values,
            "#[traced(...)] takes two strings, the service and the span name: \
             `#[traced(\"My Server\", \"myfunc\")]`; for only one, write \
             `#[traced(name = \"...\")]` or `#[traced(service = \"...\")]`",
        )),
    }
}

fn non_empty(s: &LitStr) -> syn::Result<LitStr> {
    if s.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(
            s,
            "#[traced] arguments must not be empty",
        ));
    }
    Ok(s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> syn::Result<Args> {
        syn::parse_str::<Args>(s)
    }

    #[test]
    fn accepted_forms() {
        let a = parse("").unwrap();
        assert!(a.name.is_none() && a.service.is_none());
        let a = parse(r#""My Server", "myfunc""#).unwrap();
        assert_eq!(a.service.unwrap().value(), "My Server");
        assert_eq!(a.name.unwrap().value(), "myfunc");
        let a = parse(r#"name = "n""#).unwrap();
        assert_eq!(a.name.unwrap().value(), "n");
        assert!(a.service.is_none());
        let a = parse(r#"service = "s", name = "n","#).unwrap();
        assert_eq!(a.service.unwrap().value(), "s");
    }

    #[test]
    fn refused_forms() {
        for (input, message) in [
            (r#""only one""#, "takes two strings"),
            (r#""a", "b", "c""#, "takes two strings"),
            (r#""a", 2"#, "string literal"),
            (r#"name = 2"#, "string literal"),
            (r#"kind = "server""#, "unknown #[traced] argument"),
            (r#"name = "a", name = "b""#, "duplicate"),
            (r#"name = """#, "#[traced] arguments must not be empty"),
            (r#"name"#, "expected `#[traced]`"),
        ] {
            let err = parse(input)
                .err()
                .unwrap_or_else(|| panic!("{input} parsed"));
            assert!(err.to_string().contains(message), "{input}: {err}");
        }
    }
}
