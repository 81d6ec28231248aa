// Android-only: compiled by the Gradle module (an extra source dir), never by the
// desktop JVM tests.
package health.carry.android

import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyPermanentlyInvalidatedException
import android.security.keystore.KeyProperties
import android.security.keystore.UserNotAuthenticatedException
import health.carry.ffi.CarryException
import java.security.GeneralSecurityException
import java.security.KeyStore as JcaKeyStore
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import health.carry.ffi.KeyStore as CarryKeyStore

/**
 * Wraps Carry's vault key with an AES-256-GCM key that lives in the Android Keystore
 * and never leaves it (hardware-backed where the device has it).
 *
 * The wrapped blob Carry keeps beside the vault is IV (12 bytes) ‖ ciphertext ‖ tag.
 * A blob the key cannot open (another device, a reset keystore, app data restored
 * elsewhere) throws [CarryException.WrongKey], so the app can offer recovery.
 *
 * @param alias one Keystore entry per profile; deleting it makes the vault unreadable.
 * @param unlockedDeviceRequired on API 28+, refuse to unwrap while the device is locked.
 */
class AndroidKeystoreKeyStore(
    private val alias: String = "health.carry.vault-key",
    private val unlockedDeviceRequired: Boolean = true,
) : CarryKeyStore {

    override fun wrap(key: ByteArray): ByteArray {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        // The Keystore chooses a fresh random IV; it refuses caller-chosen ones.
        cipher.init(Cipher.ENCRYPT_MODE, secretKey(createIfMissing = true))
        val iv = cipher.iv
        check(iv.size == IV_BYTES) { "unexpected GCM IV length ${iv.size}" }
        return iv + cipher.doFinal(key)
    }

    override fun unwrap(wrapped: ByteArray): ByteArray {
        if (wrapped.size < IV_BYTES + TAG_BITS / 8) {
            throw CarryException.WrongKey("the wrapped key is too short to be ours")
        }
        val key = secretKey(createIfMissing = false)
            ?: throw CarryException.WrongKey("this device's keystore has no key for this vault")
        return try {
            val cipher = Cipher.getInstance(TRANSFORMATION)
            cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(TAG_BITS, wrapped, 0, IV_BYTES))
            cipher.doFinal(wrapped, IV_BYTES, wrapped.size - IV_BYTES)
        } catch (e: AEADBadTagException) {
            throw CarryException.WrongKey("the keystore key does not open this vault")
        } catch (e: KeyPermanentlyInvalidatedException) {
            throw CarryException.WrongKey("the keystore key was invalidated")
        } catch (e: UserNotAuthenticatedException) {
            throw CarryException.Locked("unlock the device first")
        } catch (e: GeneralSecurityException) {
            throw CarryException.Internal("the Android keystore failed: ${e.javaClass.simpleName}")
        }
    }

    /** Forget the key: every vault wrapped with it can then only be recovered another way. */
    fun delete() {
        keystore().deleteEntry(alias)
    }

    private fun keystore(): JcaKeyStore = JcaKeyStore.getInstance(PROVIDER).apply { load(null) }

    private fun secretKey(createIfMissing: Boolean): SecretKey? = synchronized(lock) {
        (keystore().getKey(alias, null) as SecretKey?)
            ?: if (createIfMissing) generate() else null
    }

    private fun generate(): SecretKey {
        val spec = KeyGenParameterSpec.Builder(
            alias,
            KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT,
        )
            .setKeySize(256)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setRandomizedEncryptionRequired(true)
            .apply {
                if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
                    setUnlockedDeviceRequired(unlockedDeviceRequired)
                }
            }
            .build()
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, PROVIDER)
            .apply { init(spec) }
            .generateKey()
    }

    private companion object {
        const val PROVIDER = "AndroidKeyStore"
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV_BYTES = 12
        const val TAG_BITS = 128
        val lock = Any()
    }
}
