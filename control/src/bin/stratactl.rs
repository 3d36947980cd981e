#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    eprintln!("stratactl: the management process is not built yet (see issue 4)");
    std::process::exit(2);
}
