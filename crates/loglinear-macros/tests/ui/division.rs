use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn la(q: Key, k: Key, v: Value, g: Scalar) {
    query(q);
    transition(exp(g / 2.0) * I);
    write(outer(k, v));
}

fn main() {}
