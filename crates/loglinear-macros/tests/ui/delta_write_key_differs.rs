use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn bad(q: Key, k: Key, u: Key, v: Value, beta: Scalar) {
    query(q);
    transition(I - beta * outer(k, k));
    write(beta * outer(u, v));
}

fn main() {}
