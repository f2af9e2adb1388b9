//! Turning a function into a traced one.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{ItemFn, LitStr, ReturnType, TraitItemFn, Type};

use crate::attr::Args;

/// Parses the annotated item and expands it, or explains why it cannot be traced.
pub(crate) fn expand(args: Args, item: TokenStream) -> syn::Result<TokenStream> {
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            return Err(match syn::parse2::<TraitItemFn>(item) {
                Ok(f) if f.default.is_none() => syn::Error::new(
                    f.sig.span(),
                    "#[traced] needs a function body: put it on the implementation, \
                     not on the trait's declaration",
                ),
                _ => syn::Error::new(
                    e.span(),
                    "#[traced] can only be used on functions and methods (with a body)",
                ),
            });
        }
    };
    if let Some(constness) = &function.sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "#[traced] cannot be used on a `const fn`: spans start and stop at run time",
        ));
    }
    Ok(traced(args, function))
}

fn traced(args: Args, function: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let name = args.name.unwrap_or_else(|| {
        let ident = sig.ident.to_string();
        let ident = ident.strip_prefix("r#").unwrap_or(&ident);
        LitStr::new(ident, sig.ident.span())
    });
    let service = args
        .service
        .map(|s| quote!(.service(#s)))
        .unwrap_or_default();
    let builder = quote!(::tomograph::span(#name) #service);

    // Locals of the expansion are invisible to the function's own code.
    let span_var = syn::Ident::new("__tomograph_span", Span::mixed_site());
    let result_var = syn::Ident::new("__tomograph_result", Span::mixed_site());
    let error_var = syn::Ident::new("__tomograph_error", Span::mixed_site());
    let fake_var = syn::Ident::new("__tomograph_return", Span::mixed_site());

    let returns_result = match &sig.output {
        ReturnType::Type(_, ty) => is_result(ty),
        ReturnType::Default => false,
    };
    // An unreachable `return` of the declared type lets the compiler infer the type of the
    // closure or async block the body moves into (for `?`), with `impl Trait` left to
    // inference.
    let fake_return = match &sig.output {
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            EraseImplTrait.visit_type_mut(&mut ty);
            quote_spanned! {ty.span()=>
                #[allow(
                    unknown_lints, unreachable_code, clippy::diverging_sub_expression,
                    clippy::let_unit_value, clippy::unreachable, clippy::let_with_type_underscore,
                    clippy::empty_loop, clippy::needless_return
                )]
                if false {
                    let #fake_var: #ty = loop {};
                    return #fake_var;
                }
            }
        }
        ReturnType::Default => TokenStream::new(),
    };
    let record_error = quote! {
        if let ::core::result::Result::Err(#error_var) = &#result_var {
            #[allow(unused_imports)]
            use ::tomograph::macro_support::{DescribeAny as _, DescribeDebug as _, DescribeDisplay as _};
            ::tomograph::record_error(
                (&&::tomograph::macro_support::ErrorRef(#error_var)).describe()
            );
        }
    };

    let body = match (sig.asyncness.is_some(), returns_result) {
        (true, false) => quote! {
            ::tomograph::FutureExt::traced_with(
                async move { #fake_return #block },
                #builder,
            )
            .await
        },
        (true, true) => quote! {
            ::tomograph::FutureExt::traced_with(
                async move {
                    let #result_var = async move { #fake_return #block }.await;
                    #record_error
                    #result_var
                },
                #builder,
            )
            .await
        },
        (false, false) => quote! {
            let #span_var = #builder.start();
            #block
        },
        (false, true) => quote! {
            let #span_var = #builder.start();
            #[allow(clippy::redundant_closure_call)]
            let #result_var = (move || { #fake_return #block })();
            #record_error
            drop(#span_var);
            #result_var
        },
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

/// Whether a return type is spelled `Result<...>` (`std::io::Result<T>`, `anyhow::Result<T>`,
/// `Result<T, E>`): the last path segment is `Result`.
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().is_some_and(|s| s.ident == "Result")
        }
        Type::Paren(p) => is_result(&p.elem),
        Type::Group(g) => is_result(&g.elem),
        _ => false,
    }
}

/// Replaces every `impl Trait` by `_` (not allowed in a `let` type).
struct EraseImplTrait;

impl VisitMut for EraseImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(i) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](i.span()),
            });
            return;
        }
        visit_mut::visit_type_mut(self, ty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: &str, item: &str) -> syn::Result<String> {
        let args: Args = syn::parse_str(args)?;
        let item: TokenStream = item
            .parse()
            .map_err(|e| syn::Error::new(Span::call_site(), format!("{e}")))?;
        expand(args, item).map(|t| t.to_string())
    }

    #[test]
    fn recognises_result_types() {
        for (ty, expected) in [
            ("Result<u8, E>", true),
            ("std::io::Result<()>", true),
            ("(Result<u8, E>)", true),
            ("Option<Result<u8, E>>", false),
            ("u8", false),
            ("impl Future<Output = Result<u8, E>>", false),
        ] {
            let ty: Type = syn::parse_str(ty).unwrap();
            assert_eq!(is_result(&ty), expected, "{}", quote!(#ty));
        }
    }

    #[test]
    fn impl_trait_is_erased_everywhere() {
        let mut ty: Type =
            syn::parse_str("Result<(impl Iterator<Item = u8>, Vec<impl Send>), E>").unwrap();
        EraseImplTrait.visit_type_mut(&mut ty);
        assert_eq!(quote!(#ty).to_string(), "Result < (_ , Vec < _ >) , E >");
    }

    #[test]
    fn sync_and_async_expansions() {
        let sync = expand_str("", "fn f(x: u8) -> u8 { x }").unwrap();
        assert!(sync.contains(":: tomograph :: span (\"f\")"), "{sync}");
        assert!(sync.contains(". start ()"), "{sync}");
        let asynchronous = expand_str(r#""svc", "n""#, "async fn f() {}").unwrap();
        assert!(asynchronous.contains("traced_with"), "{asynchronous}");
        assert!(
            asynchronous.contains(". service (\"svc\")"),
            "{asynchronous}"
        );
        let result = expand_str("", "fn r#type() -> Result<(), E> { Ok(()) }").unwrap();
        assert!(result.contains("span (\"type\")"), "{result}");
        assert!(result.contains("record_error"), "{result}");
    }

    #[test]
    fn refuses_what_cannot_be_traced() {
        for (item, message) in [
            ("struct S;", "only be used on functions"),
            ("const fn f() {}", "const fn"),
            ("fn f(&self);", "needs a function body"),
        ] {
            let err = expand_str("", item).unwrap_err();
            assert!(err.to_string().contains(message), "{item}: {err}");
        }
    }
}
