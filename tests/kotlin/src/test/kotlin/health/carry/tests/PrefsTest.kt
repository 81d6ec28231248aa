package health.carry.tests

import health.carry.CarryProfile
import health.carry.ffi.CarryException
import health.carry.ffi.EmergencyCardContents
import health.carry.ffi.PrefsChange
import health.carry.ffi.Profile
import health.carry.reasonOf
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * The person's preferences through the bindings and the wrapper: read back after a
 * change and after reopening, out-of-range values as typed errors that change
 * nothing, and the opt-outs as FHIR Consents.
 */
@Timeout(60)
class PrefsTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `preferences are set, read back and kept across a reopen`(): Unit = runBlocking {
        val folder = dir.resolve("p").toString()
        Profile.create(folder, "Alfreda", TestKeyStore(1), null).use { p ->
            val defaults = p.preferences()
            assertNull(defaults.nationalOptOut)
            assertNull(defaults.type1OptOut)
            assertEquals(90u, defaults.defaultGrantDays)
            assertEquals(300u, defaults.lockTimeoutS)
            assertEquals(EmergencyCardContents(), defaults.emergencyCard, "everything by default")

            val before = System.currentTimeMillis() / 1000
            val set = p.setPreferences(
                PrefsChange(
                    nationalOptOut = true,
                    defaultGrantDays = 30u,
                    lockTimeoutS = 0u,
                    emergencyCard = EmergencyCardContents(vitalSigns = false, contacts = false),
                ),
            )
            assertEquals(true, set.nationalOptOut?.optedOut)
            assertTrue(set.nationalOptOut!!.recordedAt >= before - 1)
            assertNull(set.type1OptOut, "left alone")
            assertEquals(30u, set.defaultGrantDays)
            assertEquals(0u, set.lockTimeoutS)
            assertFalse(set.emergencyCard.vitalSigns)
            assertTrue(set.emergencyCard.allergies)
            assertEquals(set, p.preferences())

            // Turned off, the choice is kept with its date.
            val off = p.setPreferences(PrefsChange(nationalOptOut = false))
            assertEquals(false, off.nationalOptOut?.optedOut)
            assertEquals(30u, off.defaultGrantDays, "other fields unchanged")
            assertTrue(p.auditLog(10u).any { it.event == "preferences-changed" })
        }
        Profile.open(folder, TestKeyStore(1), null).use { p ->
            val again = p.preferences()
            assertEquals(false, again.nationalOptOut?.optedOut)
            assertEquals(30u, again.defaultGrantDays)
        }
    }

    @Test
    fun `carers' entries can be made to wait for approval`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Alfreda", TestKeyStore(1), null).use { p ->
            assertFalse(p.preferences().approveContributions)
            assertTrue(p.setPreferences(PrefsChange(approveContributions = true)).approveContributions)
            assertTrue(p.pendingContributions().isEmpty())
            assertReasonful(assertThrowsSuspend<CarryException.NotFound> { p.approveContribution(1) })
            assertReasonful(assertThrowsSuspend<CarryException.NotFound> { p.rejectContribution(1) })
        }
    }

    @Test
    fun `an out-of-range value is InvalidInput and changes nothing`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Alfreda", TestKeyStore(1), null).use { p ->
            val days = assertThrowsSuspend<CarryException.InvalidInput> {
                p.setPreferences(PrefsChange(defaultGrantDays = 0u, nationalOptOut = true))
            }
            assertTrue(reasonOf(days).contains("1 to 1098 days"), reasonOf(days))
            val lock = assertThrowsSuspend<CarryException.InvalidInput> {
                p.setPreferences(PrefsChange(lockTimeoutS = 3601u))
            }
            assertReasonful(lock)
            val prefs = p.preferences()
            assertNull(prefs.nationalOptOut)
            assertEquals(90u, prefs.defaultGrantDays)
            assertEquals(300u, prefs.lockTimeoutS)
        }
    }

    @Test
    fun `the opt-outs that are on come back as FHIR Consents through the wrapper`(): Unit = runBlocking {
        CarryProfile.create(dir.resolve("p").toFile(), "Alfreda", TestKeyStore(1)).use { p ->
            assertTrue(p.researchConsents().isEmpty())
            p.setPreferences(PrefsChange(nationalOptOut = true, type1OptOut = true))
            val consents = p.researchConsents().map(::JSONObject)
            assertEquals(2, consents.size)
            for (c in consents) {
                assertEquals("Consent", c.getString("resourceType"))
                assertEquals("active", c.getString("status"))
                val scope = c.getJSONObject("scope").getJSONArray("coding").getJSONObject(0)
                assertEquals("research", scope.getString("code"))
                val provision = c.getJSONObject("provision")
                assertEquals("deny", provision.getString("type"))
                assertEquals("HRESCH", provision.getJSONArray("purpose").getJSONObject(0).getString("code"))
                assertEquals("Alfreda", c.getJSONObject("patient").getString("display"))
            }
            assertEquals(
                "https://www.nhs.uk/your-nhs-data-matters/",
                consents[0].getJSONArray("policy").getJSONObject(0).getString("uri"),
            )
            p.setPreferences(PrefsChange(type1OptOut = false))
            assertEquals(1, p.researchConsents().size)
            assertEquals(false, p.preferences().type1OptOut?.optedOut)
        }
    }
}
