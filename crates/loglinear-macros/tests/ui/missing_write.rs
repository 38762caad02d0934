use loglinear_macros::log_linear;

#[log_linear(crate = ::loglinear_ir)]
fn no_write(q: Key, g: Scalar) {
    query(q);
    transition(exp(g) * I);
}

fn main() {}
