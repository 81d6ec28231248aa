// The Carry Android build: the `carry` library module and a small Compose sample.
// The Rust side comes from the repository root: `make android` (cargo-ndk, into
// carry/src/main/jniLibs) and `make bindings` (the generated Kotlin in
// ../build/bindings/kotlin). See README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "carry-android"
include(":carry", ":sample")
