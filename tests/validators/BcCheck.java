// Checks every CMS structure of a signed PDF with Bouncy Castle, the library under EU DSS and iText.
//
// Usage: java -cp <bc jars>:<classes> BcCheck <folder>
// The folder holds, for each signature of the PDF, <n>.p7s (the CMS, DER) and <n>.data (the signed
// byte ranges). For a signature (detached CMS) every SignerInfo is verified against its certificate
// and every RFC 3161 token in its unsigned attributes is validated as a TimeStampToken against the
// TSA certificate the token carries, and its imprint compared with the digest of the signature
// value. A document timestamp (a token over the byte ranges) is validated the same way, its imprint
// compared with the digest of the data. One line per check ("OK ..." or "FAIL ..."); exit status 1
// when any check failed.

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.Security;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.cms.Attribute;
import org.bouncycastle.asn1.cms.AttributeTable;
import org.bouncycastle.asn1.cms.ContentInfo;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cms.CMSProcessableByteArray;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.SignerInformation;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.DefaultAlgorithmNameFinder;
import org.bouncycastle.tsp.TimeStampToken;
import org.bouncycastle.util.Store;

public final class BcCheck {
    private static int failures = 0;

    public static void main(String[] args) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        Path folder = Path.of(args[0]);
        List<Path> sigs;
        try (Stream<Path> files = Files.list(folder)) {
            sigs = files.filter(p -> p.toString().endsWith(".p7s")).sorted().collect(Collectors.toList());
        }
        for (Path p7s : sigs) {
            String name = p7s.getFileName().toString().replace(".p7s", "");
            byte[] cms = Files.readAllBytes(p7s);
            byte[] data = Files.readAllBytes(folder.resolve(name + ".data"));
            try {
                check(name, cms, data);
            } catch (Exception e) {
                fail(name, "cms", e);
            }
        }
        System.exit(failures == 0 ? 0 : 1);
    }

    private static void check(String name, byte[] cms, byte[] data) throws Exception {
        CMSSignedData whole = new CMSSignedData(cms);
        if (PKCSObjectIdentifiers.id_ct_TSTInfo.getId().equals(whole.getSignedContentTypeOID())) {
            token(name + " document-timestamp", new TimeStampToken(whole), data);
            return;
        }
        CMSSignedData signed = new CMSSignedData(new CMSProcessableByteArray(data), cms);
        Store<X509CertificateHolder> certs = signed.getCertificates();
        int n = 0;
        for (SignerInformation signer : signed.getSignerInfos().getSigners()) {
            String what = name + " signer " + n++;
            try {
                X509CertificateHolder cert = only(certs.getMatches(signer.getSID()));
                boolean ok = signer.verify(new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(cert));
                report(ok, what, cert.getSubject().toString());
            } catch (Exception e) {
                fail(what, "signature", e);
            }
            AttributeTable unsigned = signer.getUnsignedAttributes();
            if (unsigned == null) continue;
            int t = 0;
            for (Attribute attr : unsigned.toASN1Structure().getAttributes()) {
                if (!attr.getAttrType().equals(PKCSObjectIdentifiers.id_aa_signatureTimeStampToken)) continue;
                for (ASN1Encodable value : attr.getAttributeValues()) {
                    String tokenName = what + " timestamp " + t++;
                    try {
                        TimeStampToken token = new TimeStampToken(ContentInfo.getInstance(value));
                        token(tokenName, token, signer.getSignature());
                    } catch (Exception e) {
                        fail(tokenName, "token", e);
                    }
                }
            }
        }
    }

    /** The token's own signature, by the certificate it names, and its imprint over ``covered``. */
    private static void token(String what, TimeStampToken token, byte[] covered) {
        try {
            X509CertificateHolder tsa = only(token.getCertificates().getMatches(token.getSID()));
            token.validate(new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(tsa));
            String algorithm = new DefaultAlgorithmNameFinder()
                .getAlgorithmName(token.getTimeStampInfo().getMessageImprintAlgOID());
            byte[] digest = MessageDigest.getInstance(algorithm, "BC").digest(covered);
            boolean imprint = Arrays.equals(digest, token.getTimeStampInfo().getMessageImprintDigest());
            report(imprint, what, imprint ? tsa.getSubject().toString() : "imprint does not match");
        } catch (Exception e) {
            fail(what, "token", e);
        }
    }

    private static X509CertificateHolder only(Collection<X509CertificateHolder> found) {
        if (found.size() != 1) throw new IllegalStateException(found.size() + " certificates match the signer");
        return found.iterator().next();
    }

    private static void report(boolean ok, String what, String detail) {
        if (!ok) failures++;
        System.out.println((ok ? "OK " : "FAIL ") + what + ": " + detail);
    }

    private static void fail(String what, String stage, Exception e) {
        failures++;
        System.out.println("FAIL " + what + " (" + stage + "): " + e.getClass().getSimpleName() + ": " + e.getMessage());
    }
}
