fn main() -> std::process::ExitCode {
    bootherd::cli::main()
}
