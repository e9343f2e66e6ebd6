"""Password rules: a minimum length, and not one of the passwords people pick first.

The list holds the most common passwords of the leaked Chinese and international collections (and
the forms people make of them to pass a length rule); a password is refused if it is one of them,
is a run of one character, or contains the username.
"""

from __future__ import annotations

import re

MIN_PASSWORD = 10

_COMMON = """
123456 1234567 12345678 123456789 1234567890 12345678910 0123456789 111111 1111111111 000000 0000000000
123123 123123123 123321 654321 987654321 9876543210 112233 11223344 121212 123456a 123456aa a123456
a12345678 a123456789 aa123456 abc123 abc123456 abc12345678 abcd1234 abcd123456 1234abcd 123abc 123qwe
qwe123 qwe123456 qweasd qweasdzxc qwerty qwerty123 qwertyuiop 1qaz2wsx 1qaz2wsx3edc zaq12wsx asdfgh
asdfghjkl zxcvbnm 1q2w3e4r 1q2w3e4r5t q1w2e3r4 password password1 password123 passw0rd p@ssw0rd
p@ssword admin admin123 admin1234 admin12345 administrator root123 letmein welcome welcome1 iloveyou
iloveyou1 woaini woaini1314 woaini520 5201314 520520 1314520 13145200 52013145201314 888888 8888888
88888888 666666 66666666 168168 518518 147258369 147258 159753 159357 789456 789456123 741852963
321321 qq123456 qq5201314 wang123456 li123456 zhang123456 asd123 asd123456 aaa111 aaaaaa aaaaaaaa
a1b2c3 a1b2c3d4 sunshine monkey dragon football baseball superman master shadow michael 1234qwer
qwer1234 changeme changeme123 default test123 test1234 testtest guest guest123 kcbx123456
jiaoyuju123 jiaoyu123 xuexiao123 school123 docsign docsign123
"""

COMMON_PASSWORDS = frozenset(_COMMON.split())


def password_problem(password: str, username: str = "") -> str | None:
    """Why a new password is refused (in Chinese), or None if it may be used."""
    if len(password) < MIN_PASSWORD:
        return f"密码至少需要 {MIN_PASSWORD} 位。"
    low = password.lower()
    plain = re.sub(r"[^0-9a-z]", "", low)
    if low in COMMON_PASSWORDS or (plain and plain in COMMON_PASSWORDS and len(plain) >= len(low) - 2):
        return "这个密码太常见，容易被猜到，请换一个。"
    if len(set(password)) <= 2:
        return "密码不能由一两个字符重复组成，请换一个。"
    if username and len(username) >= 3 and username.lower() in low:
        return "密码不能包含用户名，请换一个。"
    return None
