"""Forms of the account pages: shape only; the rules live in accounts.accounts."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from labshare.accounts.credit_code import CreditCodeError, validate_credit_code
from labshare.labels import choices
from labshare.models import CompanySize

#: Provincial-level divisions of China (GB/T 2260), in their official names.
PROVINCES = (
    "北京市", "天津市", "河北省", "山西省", "内蒙古自治区", "辽宁省", "吉林省", "黑龙江省",
    "上海市", "江苏省", "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省",
    "湖北省", "湖南省", "广东省", "广西壮族自治区", "海南省", "重庆市", "四川省", "贵州省",
    "云南省", "西藏自治区", "陕西省", "甘肃省", "青海省", "宁夏回族自治区",
    "新疆维吾尔自治区", "台湾省", "香港特别行政区", "澳门特别行政区",
)  # fmt: skip


def required() -> DataRequired:
    return DataRequired(message=_l("Please fill in this field."))


LANGUAGE_CHOICES = [SelectChoice("zh_CN", "中文"), SelectChoice("en", "English")]


def province_choices() -> list[SelectChoice]:
    return [SelectChoice("", _l("Choose a province")), *(SelectChoice(p, p) for p in PROVINCES)]


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[required(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[required(), Length(max=200)])
    next = HiddenField()


class RegisterForm(FlaskForm):
    company_name = StringField(_l("Company name"), validators=[required(), Length(max=200)])
    credit_code = StringField(
        _l("Unified Social Credit Code"),
        validators=[required(), Length(max=30)],
        description=_l("18 characters, printed on the business licence."),
    )
    province = SelectField(_l("Province"), choices=province_choices(), validate_choice=True)
    industry = StringField(_l("Industry"), validators=[Length(max=100)])
    size = SelectField(
        _l("Company size"),
        choices=[SelectChoice("", _l("Choose a size")), *choices(CompanySize)],
    )
    name = StringField(_l("Your name"), validators=[required(), Length(max=100)])
    email = EmailField(_l("Email"), validators=[required(), Length(max=254)])
    password = PasswordField(
        _l("Password"),
        validators=[required(), Length(max=200)],
        description=_l("At least 10 characters; not your email, not a common password."),
    )
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[
            required(),
            EqualTo("password", message=_l("The two passwords do not match.")),
        ],
    )
    locale = SelectField(_l("Language"), choices=LANGUAGE_CHOICES, default="zh_CN")

    def validate_credit_code(self, field: StringField) -> None:
        # The same check register_sme makes, here too so that a mistyped code is
        # reported together with the other fields' errors.
        try:
            validate_credit_code(field.data or "")
        except CreditCodeError as exc:
            raise ValidationError(str(exc.message)) from None


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[required(), Length(max=254)])


class NewPasswordForm(FlaskForm):
    """The reset page: a new password, twice."""

    new_password = PasswordField(
        _l("New password"),
        validators=[required(), Length(max=200)],
        description=_l("At least 10 characters; not your email, not a common password."),
    )
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[
            required(),
            EqualTo("new_password", message=_l("The two passwords do not match.")),
        ],
    )


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField(
        _l("Current password"), validators=[required(), Length(max=200)]
    )
