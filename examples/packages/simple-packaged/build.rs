fn main() {
    cloacina_build::configure();
}
