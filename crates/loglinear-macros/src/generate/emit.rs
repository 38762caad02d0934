//! Emission: a [`Lowered`] declaration → a unit struct implementing `Variant` whose `ir()` replays the
//! recorded builder calls.

use loglinear_ir::{ExprId, InputKind, Transition, UnaryOp};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::lower::{Lowered, Op};
use crate::parse::{Args, Decl};

/// `loglinear_gated_deltanet` → `LoglinearGatedDeltanet`.
pub fn camel_case(name: &str) -> String {
    name.trim_start_matches("r#")
        .split('_')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn var(id: ExprId) -> proc_macro2::Ident {
    format_ident!("e{}", id.0)
}

fn kind(k: &TokenStream, kind: InputKind) -> TokenStream {
    let v = match kind {
        InputKind::Key => quote!(Key),
        InputKind::Value => quote!(Value),
        InputKind::Scalar => quote!(Scalar),
        InputKind::Channel => quote!(Channel),
        InputKind::Levels => quote!(Levels),
        InputKind::HeadConst => quote!(HeadConst),
    };
    quote!(#k::InputKind::#v)
}

fn unary(k: &TokenStream, op: UnaryOp) -> TokenStream {
    let v = match op {
        UnaryOp::Neg => quote!(Neg),
        UnaryOp::Exp => quote!(Exp),
        UnaryOp::Softplus => quote!(Softplus),
        UnaryOp::Sigmoid => quote!(Sigmoid),
        UnaryOp::L2Norm => quote!(L2Norm),
    };
    quote!(#k::UnaryOp::#v)
}

fn binary(k: &TokenStream, op: loglinear_ir::BinaryOp) -> TokenStream {
    let v = match op {
        loglinear_ir::BinaryOp::Add => quote!(Add),
        loglinear_ir::BinaryOp::Sub => quote!(Sub),
        loglinear_ir::BinaryOp::Mul => quote!(Mul),
    };
    quote!(#k::BinaryOp::#v)
}

fn option(id: Option<ExprId>) -> TokenStream {
    match id {
        Some(id) => {
            let v = var(id);
            quote!(::core::option::Option::Some(#v))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// The generated items.
pub fn emit(decl: &Decl, args: &Args, l: &Lowered) -> TokenStream {
    let k = match &args.krate {
        Some(p) => quote!(#p),
        None => quote!(::loglinear::ir),
    };
    let name = decl.name.to_string();
    let ty = format_ident!("{}", camel_case(&name), span = decl.name.span());
    let vis = &decl.vis;
    let attrs = &decl.attrs;
    let default_doc = if attrs.iter().any(|a| a.path().is_ident("doc")) {
        quote!()
    } else {
        let d = format!(" The `{name}` variant, declared with `#[log_linear]`.");
        quote!(#[doc = #d])
    };
    let ops = l.ops.iter().map(|(id, op)| {
        let v = var(*id);
        let call = match op {
            Op::Input(n, kd) => {
                let kd = kind(&k, *kd);
                quote!(b.input(#n, #kd))
            }
            Op::Const(c) => {
                let c = Literal::f64_suffixed(*c);
                quote!(b.constant(#c))
            }
            Op::Unary(op, a) => {
                let (op, a) = (unary(&k, *op), var(*a));
                quote!(b.unary(#op, #a))
            }
            Op::Binary(op, a, c) => {
                let (op, a, c) = (binary(&k, *op), var(*a), var(*c));
                quote!(b.binary(#op, #a, #c))
            }
        };
        quote!(let #v = #call;)
    });
    let query = var(l.query);
    let transition = match &l.transition {
        Transition::Identity => quote!(#k::Transition::Identity),
        Transition::ScalarDecay { log_decay } => {
            let g = var(*log_decay);
            quote!(#k::Transition::ScalarDecay { log_decay: #g })
        }
        Transition::DiagonalDecay { log_decay } => {
            let g = var(*log_decay);
            quote!(#k::Transition::DiagonalDecay { log_decay: #g })
        }
        Transition::Delta { log_decay, beta, key } => {
            let (g, beta, key) = (option(*log_decay), var(*beta), var(*key));
            quote!(#k::Transition::Delta { log_decay: #g, beta: #beta, key: #key })
        }
    };
    let (scale, wk, wv) = (option(l.write.scale), var(l.write.key), var(l.write.value));
    let fenwick = l.fenwick.map(|lam| {
        let lam = var(lam);
        quote!(b.fenwick(#lam);)
    });
    let chunk = l.chunk;
    let name_doc = format!(" The variant's name, `{name}`.");
    quote! {
        #(#attrs)*
        #default_doc
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        #vis struct #ty;

        impl #ty {
            #[doc = #name_doc]
            pub const NAME: &'static str = #name;
        }

        impl #k::Variant for #ty {
            fn name(&self) -> &'static str {
                #name
            }

            #[allow(unused_variables)]
            fn ir(&self) -> #k::VariantIr {
                let mut b = #k::VariantBuilder::new(#name);
                #(#ops)*
                b.query(#query);
                b.transition(#transition);
                b.write(#scale, #wk, #wv);
                #fenwick
                b.chunk_size(#chunk);
                match b.finish() {
                    ::core::result::Result::Ok(v) => v,
                    ::core::result::Result::Err(e) => {
                        ::core::panic!("#[log_linear] variant `{}` was validated at compile time: {}", #name, e)
                    }
                }
            }
        }
    }
}
