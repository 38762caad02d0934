use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn bad(q: Key, k: Key, v: Value, g: Scalar) {
    query(q);
    transition(exp(g) * outer(k, k));
    write(outer(k, v));
}

fn main() {}
