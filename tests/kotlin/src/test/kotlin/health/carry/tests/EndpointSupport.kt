// The reference endpoint (`carry-endpoint`, built beside the library in target/debug)
// as a test fixture: seeded into a temporary SQLite database, served on a free port,
// stopped on close.
package health.carry.tests

import java.io.File
import java.nio.file.Path
import java.util.concurrent.CompletableFuture
import java.util.concurrent.TimeUnit
import java.util.concurrent.TimeoutException
import org.junit.jupiter.api.fail

/**
 * A running `carry-endpoint serve`. Start one with [start] and stop it with [close]
 * (`use {}`), which a test must do whether it passes or not; a shutdown hook stops
 * it too if the JVM exits first.
 */
class Endpoint private constructor(
    private val process: Process,
    /** The port it listens on (127.0.0.1). */
    val port: Int,
    /** What `seed` reported: resources per tenant. */
    val seeded: Map<String, Long>,
    private val log: File,
) : AutoCloseable {
    private val hook = Thread({ stop() }, "carry-endpoint-stop")

    init {
        Runtime.getRuntime().addShutdownHook(hook)
    }

    /** The FHIR base URL of [tenant], e.g. `http://127.0.0.1:PORT/gp/fhir`. */
    fun base(tenant: String): String = "http://127.0.0.1:$port/$tenant/fhir"

    /** What the server wrote to stderr so far, for failure messages. */
    fun log(): String = if (log.isFile) log.readText() else ""

    private fun stop() {
        if (!process.isAlive) return
        process.destroy() // SIGTERM: the server finishes the requests in flight
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly()
            process.waitFor(10, TimeUnit.SECONDS)
        }
    }

    /** Stop the server. Idempotent. */
    override fun close() {
        stop()
        try {
            Runtime.getRuntime().removeShutdownHook(hook)
        } catch (_: IllegalStateException) {
            // the JVM is already shutting down; the hook runs (and finds it stopped)
        }
    }

    companion object {
        private val LISTENING = Regex("""^listening on http://127\.0\.0\.1:(\d+)\s*$""")
        private val SEEDED = Regex("""^([a-z0-9-]+): (\d+) resources\s*$""")

        /** `carry-endpoint` beside the native library the tests load. */
        val binary: File by lazy {
            val dir = System.getProperty("carry.lib.dir")
                ?: System.getProperty("jna.library.path")
                ?: fail("neither carry.lib.dir nor jna.library.path is set: run the tests through Maven (tests/kotlin/pom.xml)")
            val bin = File(dir, "carry-endpoint")
            if (!bin.isFile || !bin.canExecute()) {
                fail(
                    "the reference endpoint is missing: expected an executable $bin beside libcarry_ffi.so. " +
                        "Build it with `cargo build -p carry-endpoint` (`make kotlin` does).",
                )
            }
            bin
        }

        /**
         * Seed [tenants] from [from] into a new SQLite database in [dir] (with
         * `--split-by-encounter` if [split]), then serve it on a free loopback port
         * with [serveArgs] added (e.g. `--fault delay/1`).
         */
        fun start(
            dir: Path,
            from: File,
            tenants: List<String>,
            split: Boolean = false,
            serveArgs: List<String> = emptyList(),
        ): Endpoint {
            val folder = dir.resolve("endpoint-${System.nanoTime()}").toFile().apply { mkdirs() }
            val db = "sqlite://" + File(folder, "ep.db").absolutePath
            val seeded = seed(db, from, tenants, split)

            val log = File(folder, "serve.log")
            val process = ProcessBuilder(
                listOf(binary.path, "serve", "--db", db, "--listen", "127.0.0.1:0") + serveArgs,
            )
                .redirectError(log)
                .redirectInput(ProcessBuilder.Redirect.from(File("/dev/null")))
                .also { it.environment()["CARRY_LOG"] = "warn" }
                .start()

            val firstLine = CompletableFuture<String?>()
            Thread({
                process.inputStream.bufferedReader().use { out ->
                    firstLine.complete(out.readLine())
                    while (out.readLine() != null) { /* keep the pipe drained */ }
                }
            }, "carry-endpoint-stdout").apply { isDaemon = true }.start()

            val line = try {
                firstLine.get(30, TimeUnit.SECONDS)
            } catch (e: TimeoutException) {
                null
            }
            val port = line?.let { LISTENING.matchEntire(it) }?.groupValues?.get(1)?.toInt()
            if (port == null) {
                process.destroyForcibly()
                process.waitFor(10, TimeUnit.SECONDS)
                fail(
                    "carry-endpoint serve did not say where it listens (first line: ${line ?: "none"}); " +
                        "stderr:\n${if (log.isFile) log.readText() else ""}",
                )
            }
            return Endpoint(process, port, seeded, log)
        }

        private fun seed(db: String, from: File, tenants: List<String>, split: Boolean): Map<String, Long> {
            val args = mutableListOf(binary.path, "seed", "--db", db)
            tenants.forEach { args += listOf("--tenant", it) }
            if (split) args += "--split-by-encounter"
            args += listOf("--from", from.path)
            val process = ProcessBuilder(args)
                .redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(File("/dev/null")))
                .also { it.environment()["CARRY_LOG"] = "warn" }
                .start()
            val output = CompletableFuture.supplyAsync { process.inputStream.bufferedReader().readText() }
            if (!process.waitFor(120, TimeUnit.SECONDS)) {
                process.destroyForcibly()
                fail("carry-endpoint seed did not finish in 120 s")
            }
            val text = output.get(10, TimeUnit.SECONDS)
            if (process.exitValue() != 0) {
                fail("carry-endpoint seed failed (exit ${process.exitValue()}):\n$text")
            }
            val counts = text.lines().mapNotNull { SEEDED.matchEntire(it) }
                .associate { it.groupValues[1] to it.groupValues[2].toLong() }
            if (counts.keys != tenants.toSet()) {
                fail("carry-endpoint seed reported ${counts.keys}, not $tenants:\n$text")
            }
            return counts
        }
    }
}
