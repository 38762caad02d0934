//! Parsing: `syn` tokens → a declaration AST ([`Decl`], [`Args`]) that keeps every span.
//!
//! Parsing checks only the *shape* of the declaration (a plain `fn` with typed parameters and a body of
//! `let` and role statements); what the expressions mean is decided by [`crate::generate::lower`].

pub mod expr;

use loglinear_ir::{InputKind, MAX_CHUNK_SIZE};
use proc_macro2::TokenStream;
use quote::ToTokens;

pub use expr::{parse_expr, DExpr, DKind};

/// The attribute's arguments: `#[log_linear(chunk = 64, debug, crate = ::loglinear::ir)]`.
#[derive(Clone, Debug, Default)]
pub struct Args {
    /// The declared default chunk size, with its literal (for spans).
    pub chunk: Option<(usize, syn::LitInt)>,
    /// Print the IR text form at compile time.
    pub debug: bool,
    /// Path of the IR crate in generated code (default `::loglinear::ir`).
    pub krate: Option<syn::Path>,
}

impl Args {
    /// Parses the attribute's argument tokens.
    pub fn parse(attr: TokenStream) -> syn::Result<Args> {
        let mut args = Args::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("chunk") {
                let lit: syn::LitInt = meta.value()?.parse()?;
                let c: usize = lit.base10_parse()?;
                if c == 0 || !c.is_power_of_two() || c > MAX_CHUNK_SIZE {
                    return Err(syn::Error::new_spanned(
                        &lit,
                        format!("invalid chunk size {c}: expected a power of two in 1..={MAX_CHUNK_SIZE} (default 64)"),
                    ));
                }
                args.chunk = Some((c, lit));
                Ok(())
            } else if meta.path.is_ident("debug") {
                args.debug = true;
                Ok(())
            } else if meta.path.is_ident("crate") {
                let value = meta.value()?;
                args.krate = Some(if value.peek(syn::LitStr) {
                    let s: syn::LitStr = value.parse()?;
                    s.parse()?
                } else {
                    value.parse()?
                });
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown argument `{}`: expected `chunk = N`, `debug` or `crate = path`",
                    meta.path.to_token_stream()
                )))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
        Ok(args)
    }
}

/// A declared input: `name: Kind`.
#[derive(Clone, Debug)]
pub struct Param {
    /// The input's name.
    pub name: syn::Ident,
    /// Its kind.
    pub kind: InputKind,
}

/// The statements a variant body holds.
#[derive(Clone, Debug)]
pub enum Stmt {
    /// `let name = value;`: a preprocessing expression.
    Let {
        /// The bound name.
        name: syn::Ident,
        /// The expression.
        value: DExpr,
    },
    /// `query(..)`, `transition(..)`, `write(..)` or `hierarchy(..)`.
    Role {
        /// Which role.
        role: Role,
        /// The role's keyword in the source.
        keyword: syn::Ident,
        /// The single argument.
        arg: DExpr,
    },
}

/// The parts of a variant that body statements declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `query(q)`: the read-out vector.
    Query,
    /// `transition(A)`: the transition.
    Transition,
    /// `write(W)`: the write.
    Write,
    /// `hierarchy(fenwick(lam))` or `hierarchy(none)`.
    Hierarchy,
}

impl Role {
    fn from_name(s: &str) -> Option<Role> {
        Some(match s {
            "query" => Role::Query,
            "transition" => Role::Transition,
            "write" => Role::Write,
            "hierarchy" => Role::Hierarchy,
            _ => return None,
        })
    }
}

/// A whole `#[log_linear]` declaration.
#[derive(Clone, Debug)]
pub struct Decl {
    /// Attributes carried over to the generated struct (doc comments, `cfg`).
    pub attrs: Vec<syn::Attribute>,
    /// The function's visibility, given to the struct.
    pub vis: syn::Visibility,
    /// The variant's name.
    pub name: syn::Ident,
    /// The inputs, in declaration order.
    pub params: Vec<Param>,
    /// The body, in order.
    pub stmts: Vec<Stmt>,
}

const KINDS: &str = "`Key` [B,T,H,K], `Value` [B,T,H,V], `Scalar` [B,T,H], `Channel` [B,T,H,K], `Levels` [B,T,H,L] \
                     or `Head` [H]";

const STATEMENTS: &str = "expected `let name = expr;`, `query(..);`, `transition(..);`, `write(..);` or \
                          `hierarchy(..);`";

fn kind_of(ty: &syn::Type) -> syn::Result<InputKind> {
    let word = match ty {
        syn::Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            Some(p.path.segments[0].ident.to_string())
        }
        _ => None,
    };
    let kind = match word.as_deref() {
        Some("Key") => Some(InputKind::Key),
        Some("Value") => Some(InputKind::Value),
        Some("Scalar") => Some(InputKind::Scalar),
        Some("Channel") => Some(InputKind::Channel),
        Some("Levels") => Some(InputKind::Levels),
        Some("Head") => Some(InputKind::HeadConst),
        _ => None,
    };
    kind.ok_or_else(|| {
        syn::Error::new_spanned(ty, format!("unknown input kind `{}`: expected {KINDS}", ty.to_token_stream()))
    })
}

fn parse_stmt(s: &syn::Stmt) -> syn::Result<Stmt> {
    match s {
        syn::Stmt::Local(local) => {
            let name = match &local.pat {
                syn::Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() => {
                    p.ident.clone()
                }
                other => return Err(syn::Error::new_spanned(other, "expected a plain name in `let name = expr;`")),
            };
            let Some(init) = &local.init else {
                return Err(syn::Error::new_spanned(local, "`let` needs a value: `let name = expr;`"));
            };
            if let Some((_, diverge)) = &init.diverge {
                return Err(syn::Error::new_spanned(diverge, "`let ... else` is not supported"));
            }
            Ok(Stmt::Let { name, value: parse_expr(&init.expr)? })
        }
        syn::Stmt::Expr(syn::Expr::Call(call), _) => {
            let keyword = match &*call.func {
                syn::Expr::Path(p) if p.qself.is_none() => p.path.get_ident().cloned(),
                _ => None,
            };
            let role = keyword.as_ref().and_then(|k| Role::from_name(&k.to_string()));
            let (Some(keyword), Some(role)) = (keyword, role) else {
                return Err(syn::Error::new_spanned(&call.func, format!("unknown statement: {STATEMENTS}")));
            };
            if call.args.len() != 1 {
                return Err(syn::Error::new_spanned(call, format!("`{keyword}(..)` takes exactly one argument")));
            }
            Ok(Stmt::Role { role, keyword, arg: parse_expr(&call.args[0])? })
        }
        other => Err(syn::Error::new_spanned(other, format!("unsupported statement: {STATEMENTS}"))),
    }
}

impl Decl {
    /// Parses the annotated item, which must be a plain `fn` with typed inputs and no return type.
    pub fn parse(item: TokenStream) -> syn::Result<Decl> {
        let f: syn::ItemFn = syn::parse2(item).map_err(|e| {
            syn::Error::new(
                e.span(),
                "#[log_linear] applies to a `fn` declaring a variant: `fn name(q: Key, ...) { .. }`",
            )
        })?;
        let sig = &f.sig;
        let qualifiers = [
            sig.constness.map(|t| t.to_token_stream()),
            sig.asyncness.map(|t| t.to_token_stream()),
            sig.unsafety.map(|t| t.to_token_stream()),
            sig.abi.as_ref().map(|t| t.to_token_stream()),
        ];
        if let Some(t) = qualifiers.into_iter().flatten().next() {
            return Err(syn::Error::new_spanned(t, "a variant declaration is a plain `fn`"));
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            return Err(syn::Error::new_spanned(&sig.generics, "a variant declaration takes no generics"));
        }
        if let syn::ReturnType::Type(..) = sig.output {
            return Err(syn::Error::new_spanned(&sig.output, "a variant declaration has no return type"));
        }
        if let Some(v) = &sig.variadic {
            return Err(syn::Error::new_spanned(v, "a variant declaration is not variadic"));
        }
        let mut params: Vec<Param> = Vec::new();
        for arg in &sig.inputs {
            let syn::FnArg::Typed(pt) = arg else {
                return Err(syn::Error::new_spanned(arg, "a variant declaration takes no `self`"));
            };
            let name = match &*pt.pat {
                syn::Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() => {
                    p.ident.clone()
                }
                other => return Err(syn::Error::new_spanned(other, "expected an input name: `name: Kind`")),
            };
            let kind = kind_of(&pt.ty)?;
            if params.iter().any(|p| p.name == name) {
                return Err(syn::Error::new_spanned(
                    &name,
                    format!("input `{name}` is declared twice: expected every input to have a distinct name"),
                ));
            }
            params.push(Param { name, kind });
        }
        let mut attrs = Vec::new();
        for a in &f.attrs {
            if a.path().is_ident("doc") || a.path().is_ident("cfg") {
                attrs.push(a.clone());
            } else {
                return Err(syn::Error::new_spanned(
                    a,
                    "unsupported attribute on a variant declaration: expected doc comments or `cfg` only",
                ));
            }
        }
        let stmts = f.block.stmts.iter().map(parse_stmt).collect::<syn::Result<Vec<_>>>()?;
        Ok(Decl { attrs, vis: f.vis.clone(), name: sig.ident.clone(), params, stmts })
    }
}
