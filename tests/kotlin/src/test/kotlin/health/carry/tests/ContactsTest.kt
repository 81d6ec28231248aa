package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.NewContact
import health.carry.ffi.Profile
import health.carry.ffi.SharePreset
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** The people to contact: added, listed, refused, removed, and named in summaries. */
class ContactsTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `a contact the person adds is listed, summarised and can be removed`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Clemente", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.clemente.path)
            assertTrue(p.contacts().isEmpty())
            val amy = p.addContact(NewContact(name = "Amy Lee", relationship = "daughter", phone = "07700 900123"))
            assertEquals("Amy Lee (daughter) 07700 900123", amy.line)
            assertEquals("self", amy.source)
            assertNull(amy.email)
            assertEquals(listOf(amy), p.contacts())

            val bundle = JSONObject(p.summaryDocument(SharePreset.EMERGENCY))
            val entries = bundle.getJSONArray("entry")
            val patient = (0 until entries.length()).map { entries.getJSONObject(it).getJSONObject("resource") }
                .single { it.getString("resourceType") == "Patient" }
            val contact = patient.getJSONArray("contact").getJSONObject(0)
            assertEquals("Amy Lee", contact.getJSONObject("name").getString("text"))

            p.removeContact(amy.item!!)
            assertTrue(p.contacts().isEmpty())
        }
    }

    @Test
    fun `a contact that is not one is InvalidInput and a provider's item cannot be removed`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Clemente", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.clemente.path)
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> {
                p.addContact(NewContact(name = "Amy", phone = "call me"))
            })
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { p.addContact(NewContact(name = "")) })
            assertTrue(p.contacts().isEmpty())
            val first = p.timeline(health.carry.ffi.TimelineQuery(limit = 1u)).items.single()
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { p.removeContact(first.id) })
            assertThrowsSuspend<CarryException.NotFound> { p.removeContact(999_999L) }
        }
    }
}
