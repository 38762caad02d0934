use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn bad(q: Key, k: Key, v: Value, beta: Scalar) {
    let g = softplus(-1.0) * 0.5;
    query(q);
    transition(exp(g) * (I - beta * outer(k, k)));
    write(beta * outer(k, v));
}

fn main() {}
