// Shared pieces of the Kotlin tests: a key store written in Kotlin, the fixtures,
// and a helper for asserting on suspend calls.
package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.Events
import health.carry.ffi.ImportProgress
import health.carry.ffi.KeyStore
import health.carry.ffi.SyncProgress
import health.carry.ffi.SyncState
import java.io.File
import java.nio.file.Files
import java.nio.file.Path
import java.security.SecureRandom
import java.util.Collections
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicInteger
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.spec.GCMParameterSpec
import javax.crypto.spec.SecretKeySpec
import kotlinx.coroutines.CompletableDeferred
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.fail

/**
 * A key store in Kotlin: AES-256-GCM under a fixed test key derived from [seed],
 * the blob being IV‖ciphertext‖tag, as the Android Keystore one stores it. A blob
 * sealed by a store with another seed fails its tag check and becomes `WrongKey`.
 */
class TestKeyStore(seed: Int = 1) : KeyStore {
    private val key = SecretKeySpec(ByteArray(32) { i -> (i * 7 + seed * 131).toByte() }, "AES")
    private val random = SecureRandom()
    val wraps = AtomicInteger()
    val unwraps = AtomicInteger()

    override fun wrap(key: ByteArray): ByteArray {
        wraps.incrementAndGet()
        require(key.size == 32) { "Carry hands over a 32-byte vault key, got ${key.size}" }
        val iv = ByteArray(IV_BYTES).also(random::nextBytes)
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.ENCRYPT_MODE, this.key, GCMParameterSpec(TAG_BITS, iv))
        return iv + cipher.doFinal(key)
    }

    override fun unwrap(wrapped: ByteArray): ByteArray {
        unwraps.incrementAndGet()
        if (wrapped.size < IV_BYTES + TAG_BITS / 8) {
            throw CarryException.WrongKey("test key store: the blob is too short")
        }
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(TAG_BITS, wrapped, 0, IV_BYTES))
        return try {
            cipher.doFinal(wrapped, IV_BYTES, wrapped.size - IV_BYTES)
        } catch (e: AEADBadTagException) {
            throw CarryException.WrongKey("test key store: this blob was sealed by another key")
        }
    }

    private companion object {
        const val IV_BYTES = 12
        const val TAG_BITS = 128
    }
}

/** One `Events.onNewAccess` call, with the thread it came on. */
data class NewAccessCall(val person: String, val name: String, val grantId: String, val thread: Thread)

/**
 * Records every progress callback and the thread it came on: import progress in
 * [calls], [threads], [threadIds], [first], [last]; sync progress in [syncCalls],
 * [syncThreads], [syncThreadIds], and every call in order in [syncProgress] (the
 * states alone in [syncStates]); new access in [newAccess].
 */
class RecordingEvents : Events {
    val calls = AtomicInteger()
    val threads: MutableSet<String> = ConcurrentHashMap.newKeySet()
    val threadIds: MutableSet<Long> = ConcurrentHashMap.newKeySet()
    val first = CompletableDeferred<ImportProgress>()
    @Volatile var last: ImportProgress? = null

    val syncCalls = AtomicInteger()
    val syncThreads: MutableSet<String> = ConcurrentHashMap.newKeySet()
    val syncThreadIds: MutableSet<Long> = ConcurrentHashMap.newKeySet()
    val syncProgress: MutableList<SyncProgress> = Collections.synchronizedList(mutableListOf())
    val firstPull = CompletableDeferred<SyncProgress>()

    val newAccess: MutableList<NewAccessCall> = Collections.synchronizedList(mutableListOf())

    /** The states seen so far, in the order they were reported (a copy). */
    val syncStates: List<SyncState>
        get() = synchronized(syncProgress) { syncProgress.map { it.state } }

    override fun onImportProgress(progress: ImportProgress) {
        calls.incrementAndGet()
        val t = Thread.currentThread()
        threads += t.name
        threadIds += t.id
        last = progress
        first.complete(progress)
    }

    override fun onSyncProgress(progress: SyncProgress) {
        syncCalls.incrementAndGet()
        val t = Thread.currentThread()
        syncThreads += t.name
        syncThreadIds += t.id
        syncProgress += progress
        if (progress.state == SyncState.PULL) firstPull.complete(progress)
    }

    override fun onNewAccess(person: String, name: String, grantId: String) {
        newAccess += NewAccessCall(person, name, grantId, Thread.currentThread())
    }

    /** Each `onBackupOverdue` call's last-backup time (null: never backed up). */
    val backupOverdue: MutableList<Long?> = Collections.synchronizedList(mutableListOf())

    override fun onBackupOverdue(lastBackupAt: Long?) {
        backupOverdue += lastBackupAt
    }
}

object Fixtures {
    private val shared: File = File(
        System.getProperty("carry.test.shared")
            ?: fail("carry.test.shared is not set: run the tests through Maven (tests/kotlin/pom.xml)"),
    )
    private val synthea = File(shared, "fixtures/fhir/synthea")

    /** GP Connect's published structured-record answers (STU3), NHS number 9999999999. */
    val gpConnect: File get() = File(shared, "fixtures/fhir/gp-connect-stu3")

    private fun patient(prefix: String): File {
        val found = synthea.listFiles { f -> f.name.startsWith(prefix) && f.name.endsWith(".json") }
            ?.singleOrNull()
        return found ?: fail("no $prefix*.json in $synthea: is -Dcarry.shared.dir right?")
    }

    /** 70 resources, the smallest patient. */
    val clemente: File get() = patient("sotf-Clemente_Kreiger_")
    const val CLEMENTE_RESOURCES = 70uL

    /** 138 resources, with glucose results. */
    val alfreda: File get() = patient("sotf-Alfreda_Wyman_")

    /** 589 resources, the largest file: over two progress intervals. */
    val jene: File get() = patient("sotf-Jene_Cummings_")
    const val JENE_RESOURCES = 589uL

    /**
     * Write Jene's resources [copies] times as NDJSON, each copy's ids suffixed
     * `-k`, so every line is a new resource. Returns the number of lines.
     */
    fun writeBigNdjson(target: Path, copies: Int): Long {
        val entries = JSONObject(jene.readText()).getJSONArray("entry")
        val resources = (0 until entries.length()).map { entries.getJSONObject(it).getJSONObject("resource") }
        val ids = resources.map { it.getString("id") }
        Files.newBufferedWriter(target).use { w ->
            for (k in 0 until copies) {
                resources.forEachIndexed { i, resource ->
                    resource.put("id", "${ids[i]}-$k")
                    w.write(resource.toString())
                    w.newLine()
                }
            }
        }
        return resources.size.toLong() * copies
    }
}

/** Like `assertThrows`, for a suspend block. */
suspend inline fun <reified T : Throwable> assertThrowsSuspend(block: suspend () -> Unit): T {
    try {
        block()
    } catch (e: Throwable) {
        if (e is T) return e
        throw AssertionError("expected ${T::class.qualifiedName}, got $e", e)
    }
    throw AssertionError("expected ${T::class.qualifiedName}, but nothing was thrown")
}

fun assertReasonful(e: CarryException) {
    assertTrue(health.carry.reasonOf(e).isNotBlank(), "every Carry error carries a reason: $e")
}
