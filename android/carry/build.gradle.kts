// The Carry library module: the generated UniFFI Kotlin, the idiomatic wrapper
// (src/main/kotlin, also compiled by the desktop tests in tests/kotlin), the
// Android-only key store (src/android/kotlin) and the native libraries.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "health.carry"
    compileSdk = 35

    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            // Kotlin sources: the wrapper, the Android-only code, and the bindings that
            // `make bindings` writes (the Android flavour, with SystemCleaner).
            java.srcDirs(
                "src/main/kotlin",
                "src/android/kotlin",
                "../../build/bindings/kotlin",
            )
            // libcarry_ffi.so per ABI, from `make android` (cargo-ndk -o src/main/jniLibs).
            jniLibs.srcDirs("src/main/jniLibs")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs {
            // Keep the release .so as cargo-ndk built it (stripped, LTO'd).
            keepDebugSymbols += "**/libcarry_ffi.so"
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

val generated = rootProject.file("../build/bindings/kotlin/health/carry/ffi/carry.kt")
tasks.named("preBuild") {
    doFirst {
        check(generated.exists()) {
            "The generated Kotlin is missing: run `make bindings` (or `make android`) at the repository root."
        }
    }
}

dependencies {
    // JNA with its own native stubs for each ABI; the generated code loads
    // libcarry_ffi.so through it.
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
    // @RequiresApi in the generated Kotlin.
    implementation("androidx.annotation:annotation:1.9.1")
}
