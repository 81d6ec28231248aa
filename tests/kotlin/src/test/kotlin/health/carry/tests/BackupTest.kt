package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.CodeGroupAnswer
import health.carry.ffi.Profile
import health.carry.ffi.recoveryConfirmationPositions
import health.carry.ffi.restoreFromEndpoint
import health.carry.ffi.restoreFromFile
import java.nio.file.Files
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * The recovery code and a backup to a file, restored on a "new phone" with the code:
 * the same record and identity; a wrong code is WrongKey and leaves nothing. And at
 * the endpoint: a restore made elsewhere with the code is reported on the first phone.
 */
@Timeout(120)
class BackupTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `a sync tells the app when a backup is overdue, and stops once one is made`(): Unit = runBlocking {
        val events = RecordingEvents()
        Profile.create(dir.resolve("p").toString(), "Alfreda", TestKeyStore(1), events).use { p ->
            p.sync(null, null, false)
            assertEquals(listOf<Long?>(null), events.backupOverdue.toList(), "never backed up")
            p.backupToFile(dir.resolve("b.carry").toString())
            p.sync(null, null, false)
            assertEquals(1, events.backupOverdue.size, "not overdue after a backup")
        }
    }

    @Test
    fun `a backup restores with its code and a wrong code leaves nothing`(): Unit = runBlocking {
        Profile.create(dir.resolve("phone").toString(), "Alfreda", TestKeyStore(1), null).use { p ->
            p.importFile(Fixtures.alfreda.path)
            assertTrue(p.backupStatus().overdue)
            val code = p.recoveryCode()
            assertEquals(14, code.split('-').size)
            val groups = code.split('-')
            val positions = recoveryConfirmationPositions()
            assertThrowsSuspend<CarryException.InvalidInput> {
                p.confirmRecoveryCode(positions.map { CodeGroupAnswer(it, "0000") })
            }
            p.confirmRecoveryCode(positions.map { CodeGroupAnswer(it, groups[it.toInt() - 1].lowercase()) })
            val file = dir.resolve("backup.carry").toString()
            val report = p.backupToFile(file)
            assertTrue(report.resources > 0uL)
            val status = p.backupStatus()
            assertFalse(status.overdue)
            assertTrue(status.codeConfirmed)

            val other = Profile.create(dir.resolve("other").toString(), "x", TestKeyStore(2), null).use { it.recoveryCode() }
            val target = dir.resolve("new-phone")
            assertThrowsSuspend<CarryException.WrongKey> {
                restoreFromFile(target.toString(), file, other, TestKeyStore(3), null)
            }
            assertFalse(Files.exists(target.resolve("vault.db")))
            // A backup a newer app made (its header names a newer schema) asks for an
            // update, and leaves nothing behind.
            val bytes = Files.readAllBytes(Path.of(file))
            val text = String(bytes, Charsets.ISO_8859_1)
            val schema = Regex("\"schema\":(\\d+)").find(text)!!
            val newer = "\"schema\":" + "9".repeat(schema.groupValues[1].length)
            val future = dir.resolve("from-the-future.carry")
            Files.write(future, text.replaceFirst(schema.value, newer).toByteArray(Charsets.ISO_8859_1))
            val elsewhere = dir.resolve("older-app")
            assertReasonful(
                assertThrowsSuspend<CarryException.NeedsUpdate> {
                    restoreFromFile(elsewhere.toString(), future.toString(), code, TestKeyStore(4), null)
                },
            )
            assertFalse(Files.exists(elsewhere.resolve("vault.db")))

            restoreFromFile(target.toString(), file, code, TestKeyStore(3), null).use { q ->
                assertEquals(p.stats().resources, q.stats().resources)
                assertEquals(p.myIdentity().keys, q.myIdentity().keys)
                assertTrue(q.verifyAudit().ok)
                assertEquals(code, q.recoveryCode())
            }
        }
    }

    @Test
    fun `a restore elsewhere with the code is reported at the next backup, once`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp")).use { ep ->
            val url = "http://127.0.0.1:${ep.port}"
            Profile.create(dir.resolve("phone").toString(), "Alfreda", TestKeyStore(1), null).use { p ->
                p.importFile(Fixtures.alfreda.path)
                p.setEndpoint(url)
                val first = p.backupToEndpoint()
                assertEquals("full", first.kind)
                assertEquals(0uL, first.restoresElsewhere)
                assertNull(first.lastRestoredAt)

                restoreFromEndpoint(dir.resolve("new-phone").toString(), url, p.recoveryCode(), TestKeyStore(2), null).use { q ->
                    assertEquals(p.stats().resources, q.stats().resources)
                    q.setEndpoint(url)
                    assertEquals(0uL, q.backupToEndpoint().restoresElsewhere, "its own restore is no news")
                }

                val next = p.backupToEndpoint()
                assertEquals(1uL, next.restoresElsewhere)
                assertNotNull(next.lastRestoredAt)
                assertEquals(1, p.auditLog(200u).count { it.event == "restored-elsewhere" })
                assertEquals(0uL, p.backupToEndpoint().restoresElsewhere, "reported once")
            }
        }
    }
}
