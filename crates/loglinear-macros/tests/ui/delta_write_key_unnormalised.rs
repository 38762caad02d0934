use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn bad(q: Key, k: Key, v: Value, g: Scalar, beta: Scalar) {
    let kn = l2norm(k);
    query(q);
    transition(exp(g) * (I - beta * outer(kn, kn)));
    write(beta * outer(k, v));
}

fn main() {}
