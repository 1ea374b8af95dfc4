fn main() {
    napi_build::setup();
    // `unix_io`: the Unix-only process and pipe calls (signals by pid, non-blocking pipe
    // writes, the stdout read on the event loop or a thread of its own). Off on Windows,
    // where the child is terminated through its handle and stdout is read by a tokio task;
    // `PION_NODE_RS_PORTABLE=1` turns it off on Unix too, so that this path is built and
    // tested on Linux (see README, "Platforms").
    println!("cargo::rustc-check-cfg=cfg(unix_io)");
    println!("cargo::rerun-if-env-changed=PION_NODE_RS_PORTABLE");
    let unix = std::env::var_os("CARGO_CFG_UNIX").is_some();
    let portable = std::env::var_os("PION_NODE_RS_PORTABLE").is_some_and(|v| v == "1");
    if unix && !portable {
        println!("cargo::rustc-cfg=unix_io");
    }
}
