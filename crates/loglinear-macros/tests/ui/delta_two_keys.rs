use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn bad(q: Key, k: Key, v: Value, beta: Scalar) {
    query(q);
    transition(I - beta * outer(q, k));
    write(beta * outer(k, v));
}

fn main() {}
