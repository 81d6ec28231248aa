// Cold start on the JVM, for `make bench-kotlin`: not a test (its name does not end in
// Test, so `make kotlin` leaves it out), a measurement that prints its figures.
package health.carry.tests

import health.carry.ffi.Profile
import health.carry.ffi.TimelineQuery
import java.io.File
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/**
 * A new JVM per run: it loads the library (through the generated bindings), opens a
 * profile of 10,013 resources with a key store written in Kotlin (an AES-GCM-wrapped
 * raw key, as an app's platform key store gives it) and reads the first timeline page
 * of 50. Timed twice: inside the new JVM, from `main` to the page (what the app pays
 * once its process runs), and from outside, from starting the JVM to its exit.
 */
class ColdStartBench {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `a new JVM to the first timeline page of a 10k profile`(): Unit = runBlocking {
        val big = dir.resolve("big.ndjson")
        val lines = Fixtures.writeBigNdjson(big, copies = COPIES)
        val folder = dir.resolve("p").toString()
        Profile.create(folder, "Cold", TestKeyStore(), null).use { p ->
            assertEquals(lines, p.importFile(big.toString()).imported.toLong())
        }
        val java = ProcessHandle.current().info().command().orElse("java")
        val classPath = System.getProperty("java.class.path")
        val libraries = System.getProperty("jna.library.path")
        val inside = mutableListOf<Double>()
        val loading = mutableListOf<Double>()
        val outside = mutableListOf<Double>()
        repeat(RUNS) {
            val started = System.nanoTime()
            val child = ProcessBuilder(
                java, "-cp", classPath, "-Djna.library.path=$libraries",
                ColdStart::class.java.name, folder,
            ).redirectErrorStream(true).start()
            val out = child.inputStream.bufferedReader().readText()
            check(child.waitFor() == 0) { "the cold start failed: $out" }
            outside += (System.nanoTime() - started) / 1e6
            val times = out.lineSequence().first { it.startsWith(MARK) }.removePrefix(MARK).trim().split(" ")
            loading += times[0].toDouble()
            inside += times[1].toDouble()
        }
        val table = buildString {
            appendLine("Carry cold start on the JVM (make bench-kotlin): $lines resources, $RUNS new JVMs.")
            appendLine()
            appendLine("| Figure | p50 | slowest | Target |")
            appendLine("|---|---|---|---|")
            appendLine("| In the new JVM: library load, open with a Kotlin key store, first page of 50 | ${ms(median(inside))} | ${ms(inside.max())} | < 50 ms |")
            appendLine("| of which loading the library and the bindings (JNA, UniFFI's checks) | ${ms(median(loading))} | ${ms(loading.max())} | — |")
            val rest = inside.zip(loading) { a, b -> a - b }
            appendLine("| of which the open and the first page | ${ms(median(rest))} | ${ms(rest.max())} | — |")
            appendLine("| From outside: JVM start to exit, the same work | ${ms(median(outside))} | ${ms(outside.max())} | — |")
        }
        println(table)
        System.getProperty("carry.bench.out")?.takeIf { it.isNotBlank() }?.let { File(it).writeText(table) }
    }

    private fun median(xs: List<Double>): Double = xs.sorted()[xs.size / 2]

    private fun ms(x: Double): String = "%.1f ms".format(x)

    private companion object {
        /** 17 copies of Jene Cummings' 589 resources: 10,013. */
        const val COPIES = 17
        const val RUNS = 10
    }
}

/** The line a cold start prints its times on: to the library loaded, to the page. */
private const val MARK = "cold-start-ms "

/** The child of [ColdStartBench]: one cold start, from `main` to the first page. */
object ColdStart {
    @JvmStatic
    fun main(args: Array<String>) {
        val started = System.nanoTime()
        health.carry.ffi.uniffiEnsureInitialized()
        val loaded = (System.nanoTime() - started) / 1e6
        val page = runBlocking {
            Profile.open(args[0], TestKeyStore(), null).use { p -> p.timeline(TimelineQuery(limit = 50u)) }
        }
        val elapsed = (System.nanoTime() - started) / 1e6
        check(page.items.size == 50) { "the first page holds ${page.items.size} items" }
        println("$MARK$loaded $elapsed")
    }
}
