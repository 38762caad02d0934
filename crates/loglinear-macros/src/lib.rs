//! # loglinear-macros: the `#[log_linear]` DSL
//!
//! Declare a linear-attention variant as a Rust `fn` and get a unit struct implementing
//! `loglinear::ir::Variant`; a declaration with `hierarchy(fenwick(lam))` gives both its log-linear form and its
//! linear base model (`Variant::forms`).
//!
//! ```ignore
//! use loglinear::log_linear;
//!
//! /// Log-linear Gated DeltaNet.
//! #[log_linear(chunk = 64)]
//! pub fn loglinear_gated_deltanet(q: Key, k: Key, v: Value, g: Scalar, beta: Scalar, lam: Levels) {
//!     query(q);
//!     transition(exp(g) * (I - beta * outer(k, k)));
//!     write(beta * outer(k, v));
//!     hierarchy(fenwick(lam));
//! }
//! ```
//!
//! The declaration is parsed into an AST that keeps spans ([`parse`]), classified into the variant algebra
//! by running `loglinear_ir::VariantBuilder` and its validator at expansion time ([`generate::lower`]), and
//! emitted as code that replays the same builder calls ([`generate::emit`]). Anything outside the algebra is
//! a compile error pointing at the offending sub-expression. See `docs/DSL.md` for the grammar.
//!
//! Arguments: `chunk = N` (default chunk size, a power of two in 1..=256, default 64), `debug` (print the IR
//! text form to stderr at compile time), `crate = path` (path of the IR crate in generated code, default
//! `::loglinear::ir`; crates that cannot depend on the facade use `crate = ::loglinear_ir`).

#![warn(missing_docs)]

use proc_macro2::TokenStream;

mod generate;
mod parse;

/// Declares a linear-attention variant; see the crate documentation and `docs/DSL.md`.
#[proc_macro_attribute]
pub fn log_linear(attr: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// The whole expansion: parse, classify (building and validating the IR), optionally print, emit.
fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse::Args::parse(attr)?;
    let decl = parse::Decl::parse(item)?;
    let lowered = generate::lower::lower(&decl, &args)?;
    if args.debug {
        eprintln!("{}", debug_text(&lowered.ir));
    }
    Ok(generate::emit::emit(&decl, &args, &lowered))
}

/// What `#[log_linear(debug)]` prints: the IR text form of every form of the declaration.
fn debug_text(ir: &loglinear_ir::VariantIr) -> String {
    let mut s = format!("note: #[log_linear(debug)] `{}`:\n{ir}", ir.name);
    if ir.is_log_linear() {
        s.push_str(&format!("\nnote: its linear base model:\n{}", ir.linear_base()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn lower(attr: TokenStream, item: TokenStream) -> syn::Result<loglinear_ir::VariantIr> {
        let args = parse::Args::parse(attr)?;
        let decl = parse::Decl::parse(item)?;
        Ok(generate::lower::lower(&decl, &args)?.ir)
    }

    #[test]
    fn gated_deltanet_matches_builtin() {
        let ir = lower(
            quote!(chunk = 64),
            quote! {
                pub fn loglinear_gated_deltanet(q: Key, k: Key, v: Value, g: Scalar, beta: Scalar, lam: Levels) {
                    query(q);
                    transition(exp(g) * (I - beta * outer(k, k)));
                    write(beta * outer(k, v));
                    hierarchy(fenwick(lam));
                }
            },
        )
        .unwrap();
        assert_eq!(ir, loglinear_ir::builtins::by_name("loglinear_gated_deltanet").unwrap());
        let text = debug_text(&ir);
        assert!(text.contains("transition = exp(g) * (I - beta * outer(k, k))"), "{text}");
        assert!(text.contains("variant gated_deltanet {"), "{text}");
    }

    #[test]
    fn preprocessing_and_classes() {
        let ir = lower(
            quote!(chunk = 32),
            quote! {
                fn v(q: Key, k: Key, v: Value, a: Scalar, bias: Head, b_raw: Scalar) {
                    let g = -softplus(a + bias) * 0.5;
                    let kn = l2norm(k);
                    query(l2norm(q));
                    transition(exp(g) * (I - sigmoid(b_raw) * outer(kn, kn)));
                    write(sigmoid(b_raw) * outer(kn, v));
                }
            },
        )
        .unwrap();
        assert_eq!(ir.class(), loglinear_ir::TransitionClass::GatedDelta);
        assert_eq!(ir.chunk_size, 32);
        let s = ir.to_string();
        assert!(
            s.contains(
                "transition = exp(-softplus(a + bias) * 0.5) * (I - sigmoid(b_raw) * outer(l2norm(k), l2norm(k)))"
            ),
            "{s}"
        );
        for (t, class) in [
            (quote!(I), "identity"),
            (quote!(exp(h) * I), "constant_decay"),
            (quote!(exp(s)), "scalar_decay"),
            (quote!(I * exp(s)), "scalar_decay"),
            (quote!(diag(exp(c))), "diagonal_decay"),
            (quote!(I - s * outer(k, k)), "delta"),
        ] {
            let ir = lower(
                quote!(),
                quote! {
                    fn x(q: Key, k: Key, v: Value, s: Scalar, h: Head, c: Channel) {
                        let unused = s + h + c;
                        query(q + 0.0 * c * s * h);
                        transition(#t);
                        write(outer(k, v));
                    }
                },
            )
            .unwrap();
            assert_eq!(ir.class().name(), class, "{t}");
        }
    }

    #[test]
    fn errors_name_what_was_expected() {
        let cases = [
            (quote!(exp(v) * I), "the log decay g in `exp(g)` must be a scalar"),
            (quote!(exp(c)), "for a per-channel decay write `diag(exp(g))`"),
            (quote!(I + outer(k, k)), "unsupported transition `I + outer(k, k)`"),
            (quote!(exp(s) * outer(k, k)), "unsupported matrix `outer(k, k)`"),
            (quote!(I - s * outer(k, q)), "same key twice"),
            (quote!(diag(c)), "expected `exp(g)` inside `diag(..)`"),
        ];
        for (t, want) in cases {
            let e = lower(
                quote!(),
                quote! {
                    fn x(q: Key, k: Key, v: Value, s: Scalar, c: Channel) {
                        query(q + c + s);
                        transition(#t);
                        write(outer(k, v));
                    }
                },
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{t}: {e}");
        }
    }

    #[test]
    fn declarations_that_could_never_run_are_rejected() {
        for (t, want) in [
            (quote!(exp(0.5) * I), "`0.5` is the constant 0.5"),
            (quote!(exp(s - s + 1.0)), "reads `s`, so not a constant: accepted"),
            (quote!(exp(softplus(0.0))), "`softplus(0.0)` is the constant 0.69314"),
            (quote!(exp(0.25) * (I - s * outer(k, k))), "`0.25` is the constant 0.25"),
            (quote!(exp(1.0 - 0.5) * I), "e.g. `exp(-(1.0 - 0.5))`"),
            (quote!(exp(-(0.0 - 1.0)) * I), "e.g. `exp(0.0 - 1.0)`"),
            (quote!(exp(0.0 - 1.0) * I), "not a constant > 0: accepted"),
        ] {
            let r = lower(
                quote!(),
                quote! {
                    fn x(q: Key, k: Key, v: Value, s: Scalar) {
                        query(q + s);
                        transition(#t);
                        write(outer(k, v));
                    }
                },
            );
            match (r, want.contains("not a constant")) {
                (Ok(_), true) => {}
                (Err(e), false) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(want) && e.contains("positive constant log decay") && e.contains("≤ 0"),
                        "{t}: {e}"
                    );
                }
                (r, _) => panic!("{t}: {r:?}"),
            }
        }
        for (pre, erase, write, want) in [
            (quote!(), quote!(k), quote!(q), "the write key `q` is not the delta rule's erasure key `k`"),
            (quote!(), quote!(l2norm(k)), quote!(k), "e.g. `write(outer(l2norm(k), v))`"),
            (quote!(let kn = l2norm(k);), quote!(kn), quote!(2.0 * kn), "erasure key `kn`"),
            (quote!(let kk = k;), quote!(kk), quote!(kk), "a `let` after the transition rebinds a name in `kk`"),
        ] {
            let rebind = if want.contains("rebinds") { quote!(let kk = l2norm(k);) } else { quote!() };
            let e = lower(
                quote!(),
                quote! {
                    fn x(q: Key, k: Key, v: Value, s: Scalar) {
                        #pre
                        query(q);
                        transition(I - s * outer(#erase, #erase));
                        #rebind
                        write(outer(#write, v));
                    }
                },
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want) && e.contains("WY/UT") && e.contains("same key expression"), "{write}: {e}");
        }
        // The same key spelled twice is one key.
        let ir = lower(
            quote!(),
            quote! {
                fn x(q: Key, k: Key, v: Value, s: Scalar) {
                    let kn = l2norm(k);
                    query(q);
                    transition(I - s * outer(l2norm(k), kn));
                    write(s * outer(l2norm(k), v));
                }
            },
        )
        .unwrap();
        assert_eq!(ir.class(), loglinear_ir::TransitionClass::Delta);
    }

    #[test]
    fn camel_case() {
        assert_eq!(generate::emit::camel_case("loglinear_gated_deltanet"), "LoglinearGatedDeltanet");
        assert_eq!(generate::emit::camel_case("mamba2"), "Mamba2");
    }

    #[test]
    fn emitted_code_uses_crate_path() {
        let out = expand(
            quote!(crate = ::loglinear_ir),
            quote! { fn la(q: Key, k: Key, v: Value) { query(q); write(outer(k, v)); } },
        )
        .unwrap()
        .to_string();
        assert!(out.contains(":: loglinear_ir :: VariantBuilder :: new (\"la\")"), "{out}");
        assert!(out.contains("struct La"), "{out}");
        let out = expand(quote!(), quote! { fn la(q: Key, k: Key, v: Value) { query(q); write(outer(k, v)); } })
            .unwrap()
            .to_string();
        assert!(out.contains(":: loglinear :: ir :: Variant for La"), "{out}");
    }
}
