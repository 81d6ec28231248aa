package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.EnteredBy
import health.carry.ffi.Profile
import health.carry.ffi.Reading
import health.carry.ffi.TimelineQuery
import health.carry.ffi.TemperatureUnit
import health.carry.ffi.WeightUnit
import health.carry.ffi.parseReading
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** Readings a person types in: parsed, checked, stored. */
class ReadingTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `parseReading reads what a person types`() {
        assertEquals(Reading.Weight(72.5, WeightUnit.KILOGRAMS), parseReading("weight", "72.5kg"))
        assertEquals(Reading.BloodPressure(120u, 80u), parseReading("bp", "120/80"))
        assertEquals(Reading.HeartRate(64u), parseReading("pulse", "64"))
    }

    @Test
    fun `a weight in stones is InvalidInput`() {
        val e = assertThrows<CarryException.InvalidInput> { parseReading("weight", "72.5st") }
        assertReasonful(e)
    }

    @Test
    fun `an implausible reading is InvalidInput and stores nothing`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Ada", TestKeyStore(), null).use { p ->
            val before = p.stats().resources
            val e = assertThrowsSuspend<CarryException.InvalidInput> {
                p.addReading(Reading.Weight(0.0, WeightUnit.KILOGRAMS), null)
            }
            assertReasonful(e)
            assertThrowsSuspend<CarryException.InvalidInput> {
                p.addReading(Reading.HeartRate(1000u), "far too fast")
            }
            assertEquals(before, p.stats().resources)
        }
    }

    @Test
    fun `a plausible reading is stored as the person's own, newest first`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Ada", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.clemente.path)
            val item = p.addReading(parseReading("weight", "72.5kg"), "after breakfast")
            assertEquals(EnteredBy.PATIENT, item.enteredBy)
            assertEquals("Observation", item.resourceType)
            assertEquals(item, p.timeline(TimelineQuery(limit = 1u)).items.single())
            assertEquals(item, p.show(item.id).item)
        }
    }

    @Test
    fun `a reading taken earlier keeps its time, and a mistake is amended or deleted`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Ada", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.clemente.path)
            val earlier = 1_764_578_400L // 2025-12-01T08:40:00Z
            val wrong = p.addReading(Reading.Temperature(38.9, TemperatureUnit.CELSIUS), null, earlier)
            assertEquals("2025-12-01T08:40:00Z", wrong.date)
            val fixed = p.amendReading(wrong.id, Reading.Temperature(36.9, TemperatureUnit.CELSIUS), "re-measured")
            assertEquals(wrong.date, fixed.date, "it keeps the time of the reading it replaces")
            assertReasonful(assertThrowsSuspend<CarryException.NotFound> { p.show(wrong.id) })
            assertEquals(0uL, p.deleteReading(fixed.id), "it never left the device")
            assertReasonful(assertThrowsSuspend<CarryException.NotFound> { p.deleteReading(fixed.id) })
            // A provider's record is theirs to correct.
            val imported = p.timeline(TimelineQuery(limit = 1u)).items.single()
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { p.deleteReading(imported.id) })
            assertReasonful(
                assertThrowsSuspend<CarryException.InvalidInput> {
                    p.addReading(Reading.OxygenSaturation(97u), null, 4_102_444_800L)
                },
            )
        }
    }
}
