"""The self-signed certificate: at most 365 days, and made again when the names change or it nears expiry."""

import pytest

from tests.host.test_idempotence import provision


def certificate(host, app_name):
    """(subjectAltName, notBefore, notAfter) of the site's certificate, as openssl prints them."""
    out = host.check_output(
        f"openssl x509 -in /etc/ssl/{app_name}/{app_name}.crt -noout -ext subjectAltName -startdate -enddate"
    )
    return out


def test_self_signed_certificate_lives_at_most_365_days(host, app_name):
    """Browsers and Mozilla's guideline cap a certificate's life at 398/366 days; ours is 365."""
    cert = f"/etc/ssl/{app_name}/{app_name}.crt"
    if host.run(f"openssl x509 -in {cert} -noout -issuer -subject | cut -d= -f2- | uniq | wc -l").stdout.strip() != "1":
        pytest.skip("the operator's certificate (not self-signed)")
    days = host.check_output(
        f'echo $(( ($(date -d "$(openssl x509 -in {cert} -noout -enddate | cut -d= -f2)" +%s)'
        f' - $(date -d "$(openssl x509 -in {cert} -noout -startdate | cut -d= -f2)" +%s)) / 86400 ))'
    )
    assert int(days) <= 365


@pytest.mark.destructive
def test_self_signed_certificate_follows_the_server_names(host, app_name, retrust):
    """Another name in server_names: provisioning makes a certificate for it; back again, and back."""
    before = certificate(host, app_name)
    try:
        provision("--set", 'server_names=["192.168.56.10","todo.test"]')
        assert "DNS:todo.test" in certificate(host, app_name)
    finally:
        provision()
    after = certificate(host, app_name)
    assert "DNS:todo.test" not in after and "IP Address:192.168.56.10" in after and after != before


@pytest.mark.destructive
def test_self_signed_certificate_is_made_again_30_days_before_it_expires(host, app_name, retrust):
    """A certificate with 20 days left (made here by hand) is replaced by a 365-day one."""
    cert, key = f"/etc/ssl/{app_name}/{app_name}.crt", f"/etc/ssl/{app_name}/{app_name}.key"
    host.check_output(
        f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 20 -subj /CN=x "
        f"-addext subjectAltName=IP:192.168.56.10 -keyout {key} -out {cert} 2>/dev/null && chmod 644 {cert}"
    )
    provision()
    assert host.run(f"openssl x509 -in {cert} -noout -checkend {300 * 86400}").rc == 0  # 300+ days left
