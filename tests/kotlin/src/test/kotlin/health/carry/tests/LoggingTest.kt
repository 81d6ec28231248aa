package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.LogLevel
import health.carry.ffi.Logger
import health.carry.ffi.Profile
import health.carry.ffi.setLogger
import java.nio.file.Path
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** The core's log records, forwarded to a Logger written in Kotlin. */
class LoggingTest {
    @TempDir
    lateinit var dir: Path

    private data class Record(val level: LogLevel, val target: String, val message: String, val thread: Long)

    @Test
    fun `log records reach a Kotlin Logger from a thread of their own`(): Unit = runBlocking {
        val records = LinkedBlockingQueue<Record>()
        setLogger(
            object : Logger {
                override fun log(level: LogLevel, target: String, message: String) {
                    records += Record(level, target, message, Thread.currentThread().id)
                }
            },
            LogLevel.DEBUG,
        )
        try {
            Profile.create(dir.resolve("p").toString(), "Logs", TestKeyStore(), null).use { p ->
                p.importFile(Fixtures.clemente.path)
                // A failed call is logged (at debug) where core errors become public ones.
                assertThrowsSuspend<CarryException.NotFound> { p.show(987_654_321L) }
            }
            val first = records.poll(10, TimeUnit.SECONDS)
            assertNotNull(first, "no log record arrived within 10 s")
            Thread.sleep(200) // let the log thread drain
            val all = listOf(first!!) + generateSequence { records.poll() }.toList()
            all.forEach { println("log: ${it.level} ${it.target}: ${it.message}") }
            assertTrue(all.any { it.level == LogLevel.DEBUG }, "debug records pass at DEBUG")
            assertTrue(all.all { it.target.isNotBlank() })
            assertFalse(all.any { it.thread == Thread.currentThread().id }, "logged on the caller's thread")
            // Logs name no health data: not even the patient's name from the file.
            assertFalse(all.any { "Kreiger" in it.message || "Clemente" in it.message })
        } finally {
            // Back to failures only, so the rest of the suite runs quietly.
            setLogger(
                object : Logger {
                    override fun log(level: LogLevel, target: String, message: String) {}
                },
                LogLevel.ERROR,
            )
        }
    }
}
