//! The `portcullis` binary: everything lives in the library; see `cli`.

/// mimalloc instead of the system allocator: the request path allocates
/// small, short-lived buffers per request (header maps, bytes), where glibc's
/// malloc/free showed up as ~12% of the proxy's CPU in `perf`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
